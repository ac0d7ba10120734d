"""The ``ray`` executor: each run is a Ray task with GPU/CPU resources, retried on worker loss.

``address=""`` starts a private local Ray instance (what a laptop or CI has);
``address="auto"`` joins the cluster this host belongs to, and ``ray://HOST:10001`` a
remote one. Every task runs :func:`demtui.executors.worker.run_job` on the run
directory, which must sit on a path the driver and every worker share; before anything
runs, one probe task per alive node checks that (a clear sentence when a node cannot
see it). Ray retries a task whose worker process or node died (``max_retries``), and
the retried run resumes from its finished stages; bad input and failed runs come back
as exit codes and are not retried. Ray is imported only here, only when chosen.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from demtui.errors import DemtuiError
from demtui.executors.base import (
    ACTIVE,
    CANCELLED,
    LOST,
    QUEUED,
    RUNNING,
    RunHandle,
    new_handle,
)
from demtui.executors.worker import probe_path, run_job

INSTALL = "install it with `uv sync --extra ray` (or `pip install 'demtui[ray]'`)"


def _ray(local: bool):
    if local:
        # A private local Ray: its workers share this interpreter, so Ray's `uv run`
        # integration (shipping the working directory to every worker) only costs time.
        # Ray reads this switch when it is first imported.
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray
    except ImportError:
        raise DemtuiError(f"The ray executor needs Ray, which is not installed; {INSTALL}.") from None
    return ray


def _no_uv_runtime_env() -> None:
    """Also when Ray was imported before us (its switch is read at import): a private Ray's
    workers run this very interpreter, nothing needs shipping."""
    try:
        from ray._private import ray_constants

        ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
    except (ImportError, AttributeError):  # a future Ray without the switch
        pass


class RayExecutor:
    name = "ray"

    def __init__(self, address: str = "", num_cpus: float = 1.0, num_gpus: float = 0.0, max_retries: int = 2,
                 local_cpus: int = 0, registry: str | None = None, env: dict[str, str] | None = None) -> None:
        ray = _ray(local=not address)
        self.ray = ray
        self.started_here = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address:
                kwargs["address"] = address
            else:
                _no_uv_runtime_env()
                if local_cpus:
                    kwargs["num_cpus"] = local_cpus
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise DemtuiError(f"Cannot reach the Ray cluster at '{address}' ({exc}); start it (`ray start "
                                  "--head`) or pass --ray-address with its address.") from None
            self.started_here = True
        self.registry = registry
        self.env = {"DEMTUI_CACHE": os.environ.get("DEMTUI_CACHE", str(Path.home() / ".cache" / "demtui")),
                    **(env or {})}
        self._options = {"num_cpus": num_cpus, "max_retries": max_retries, "retry_exceptions": False,
                         "name": "demtui-run"}
        self.set_gpus(num_gpus)
        self.handles: list[RunHandle] = []
        self.gpus = 0

    def set_gpus(self, num_gpus: float) -> None:
        """GPUs each run reserves (Ray sets CUDA_VISIBLE_DEVICES in its worker accordingly)."""
        self.num_gpus = num_gpus
        self._task = self.ray.remote(run_job).options(num_gpus=num_gpus, **self._options)

    # -- before any work ------------------------------------------------------------------
    def check_shared(self, root: Path) -> None:
        """Every alive node must see ``root`` (the driver's folder) and be able to write in it."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        root = Path(root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        token = f".demtui-driver-{uuid.uuid4().hex[:8]}"
        (root / token).write_text("driver", encoding="utf-8")
        try:
            probe = self.ray.remote(probe_path)
            refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote(str(root), token) for n in self.ray.nodes() if n.get("Alive")]
            for problem in self.ray.get(refs, timeout=120):
                if problem:
                    raise DemtuiError(f"A Ray worker cannot use the output folder: {problem}; put --out on a "
                                      "file system every node mounts at the same path (docs/scale.md).")
        finally:
            (root / token).unlink(missing_ok=True)

    # -- the executor interface --------------------------------------------------------------
    def submit(self, spec_toml: str | None, run_dir: Path, *, device: str = "auto", resume: bool = False,
               label: str = "") -> RunHandle:
        run_dir = Path(run_dir).resolve()
        handle = new_handle(self, spec_toml, run_dir, device=device, resume=resume, label=label)
        log = run_dir / "run.log"
        handle._log_offset = log.stat().st_size if log.exists() else 0
        try:
            handle._job = self._task.remote(str(run_dir), None if device in ("", "auto") else device, resume,
                                            self.registry, self.env)
        except BaseException:
            self.handles.remove(handle)
            raise
        return handle

    def poll(self) -> list[RunHandle]:
        changed = []
        waiting = [h for h in self.handles if h.status in ACTIVE]
        if not waiting:
            return changed
        ready, _ = self.ray.wait([h._job for h in waiting], num_returns=len(waiting), timeout=0)
        ready_ids = {r.hex() for r in ready}
        for h in waiting:
            attempts = self._attempts(h)
            if h._job.hex() in ready_ids:
                self._collect(h)
                changed.append(h)
            elif attempts != h.attempts:
                h.attempts = attempts
                h.status = RUNNING  # started stays None: Ray does not say when the task began
                changed.append(h)
        return changed

    def _attempts(self, h: RunHandle) -> int:
        """Worker starts since submission, read from the run's own log (retries show up here)."""
        try:
            with open(h.run_dir / "run.log", "rb") as fh:
                fh.seek(h._log_offset)
                return fh.read().count(b"$ worker ")
        except OSError:
            return 0

    def _collect(self, h: RunHandle) -> None:
        from ray.exceptions import RayError, TaskCancelledError

        try:
            result = self.ray.get(h._job)
        except TaskCancelledError:
            h.cancel_requested = True
            h.finish(130)
            return
        except RayError as exc:
            lost = type(exc).__name__
            h.finish(LOST, f"{lost} after {h.attempts} attempt(s); --resume continues from its finished stages")
            return
        h.finish_with(result)

    def cancel(self, h: RunHandle) -> None:
        if h.status not in ACTIVE:
            return
        force = h.cancel_requested  # a second cancel kills the worker
        h.cancel_requested, h.cancel_time = True, time.time()
        try:
            self.ray.cancel(h._job, force=force)
        except Exception:  # noqa: BLE001 - an already finished task cannot be cancelled
            pass
        if h.status == QUEUED and not force:
            h.status, h.message = CANCELLED, "cancelled before it started"

    def active(self) -> list[RunHandle]:
        return [h for h in self.handles if h.status in ACTIVE]

    def shutdown(self, cancel: bool = True, wait: float = 20.0) -> None:
        if cancel:
            for h in self.active():
                self.cancel(h)
            deadline = time.time() + wait
            while self.active() and time.time() < deadline:
                self.poll()
                time.sleep(0.1)
            for h in self.active():
                h.cancel_requested = True
                self.cancel(h)
                h.finish(130)
        if self.started_here:
            self.ray.shutdown()
