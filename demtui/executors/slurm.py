"""The ``slurm`` executor: each run is a SLURM job submitted through submitit.

submitit writes one folder per job (its sbatch script, pickled call and logs) under
``folder`` (default ``<out>/.submitit``), which, like the run directories, must be on a
file system the login node and the compute nodes share. ``cluster="local"`` runs the
same jobs as local processes through submitit's LocalExecutor (no SLURM needed: how the
tests run it). A job that times out or is preempted is requeued by submitit
(:class:`CellJob` is Checkpointable) and resumes its run; a job that died without
answering (node failure, killed) is resubmitted with resume, ``max_retries`` times.
submitit is imported only here, only when chosen.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from demtui.errors import DemtuiError

try:
    import submitit
except ImportError:  # pragma: no cover - exercised through make()
    submitit = None  # type: ignore[assignment]

from demtui.executors.base import (
    ACTIVE,
    CANCELLED,
    LOST,
    QUEUED,
    RUNNING,
    RunHandle,
    new_handle,
)
from demtui.executors.worker import run_job

INSTALL = "install it with `uv sync --extra slurm` (or `pip install 'demtui[slurm]'`)"


def _require() -> Any:
    if submitit is None:
        raise DemtuiError(f"The slurm executor needs submitit, which is not installed; {INSTALL}.")
    return submitit


class CellJob(submitit.helpers.Checkpointable if submitit else object):  # type: ignore[misc]
    """One run as a submitit callable; requeued after a timeout or preemption, it resumes."""

    def __init__(self, run_dir: str, device: str | None, resume: bool, registry: str | None,
                 env: dict[str, str]) -> None:
        self.run_dir, self.device, self.resume, self.registry, self.env = run_dir, device, resume, registry, env

    def __call__(self) -> dict[str, Any]:
        return run_job(self.run_dir, self.device, self.resume, self.registry, self.env)


class SlurmExecutor:
    name = "slurm"

    def __init__(self, folder: Path, partition: str = "", time_min: int = 120, gpus: int = 1, cpus: int = 4,
                 mem_gb: float = 0, account: str = "", qos: str = "", constraint: str = "", cluster: str = "auto",
                 max_retries: int = 1, registry: str | None = None, env: dict[str, str] | None = None) -> None:
        sub = _require()
        self.folder = Path(folder)
        try:
            self._ex = sub.AutoExecutor(folder=str(self.folder / "%j"), cluster=None if cluster == "auto" else cluster)
        except (ValueError, RuntimeError) as exc:
            raise DemtuiError(f"submitit cannot use cluster '{cluster}' here ({exc}); run on a SLURM login node or "
                              "set executor.cluster=local.") from None
        if self._ex.cluster == "debug":
            raise DemtuiError("No SLURM cluster was found (sbatch is not on PATH); run on a SLURM login node or "
                              "set executor.cluster=local to run the jobs on this host.")
        params: dict[str, Any] = {"timeout_min": int(time_min), "gpus_per_node": int(gpus),
                                  "cpus_per_task": int(cpus), "name": "demtui"}
        if mem_gb:
            params["mem_gb"] = float(mem_gb)
        for key, value in (("partition", partition), ("account", account), ("qos", qos), ("constraint", constraint)):
            if value:
                params[f"slurm_{key}"] = value
        self._ex.update_parameters(**params)
        self.max_retries = max_retries
        self.registry = registry
        self.env = {"DEMTUI_CACHE": os.environ.get("DEMTUI_CACHE", str(Path.home() / ".cache" / "demtui")),
                    **(env or {})}
        self.handles: list[RunHandle] = []
        self.gpus = 0

    def submit(self, spec_toml: str | None, run_dir: Path, *, device: str = "auto", resume: bool = False,
               label: str = "") -> RunHandle:
        handle = new_handle(self, spec_toml, Path(run_dir).resolve(), device=device, resume=resume, label=label)
        try:
            self._send(handle)
        except BaseException:
            self.handles.remove(handle)
            raise
        return handle

    def _send(self, h: RunHandle) -> None:
        device = None if h.device in ("", "auto") else h.device
        h._job = self._ex.submit(CellJob(str(h.run_dir), device, h.resume, self.registry, self.env))
        h.attempts += 1
        h.message = f"job {h._job.job_id}"

    def poll(self) -> list[RunHandle]:
        changed = []
        for h in self.active():
            job = h._job
            if job.done():
                self._collect(h)
                changed.append(h)
                continue
            state = job.state
            if state == "RUNNING" and h.status == QUEUED:
                h.status = RUNNING  # started stays None: overhead counts from submission, queue included
                changed.append(h)
        return changed

    def _collect(self, h: RunHandle) -> None:
        job = h._job
        try:
            result = job.result()
        except Exception as exc:  # noqa: BLE001 - the job died without answering
            if h.cancel_requested:
                h.finish(130)
            elif h.attempts <= self.max_retries:
                h.resume, h.status = True, QUEUED
                self._send(h)
                h.message = f"job died ({job.state}); resubmitted as job {h._job.job_id} to continue"
            else:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                h.finish(LOST, f"SLURM job {job.job_id} ended without a result ({job.state}: {first[:200]}); "
                               f"its log is under {self.folder}")
            return
        h.finish_with(result)

    def cancel(self, h: RunHandle) -> None:
        if h.status not in ACTIVE:
            return
        h.cancel_requested, h.cancel_time = True, time.time()
        try:
            h._job.cancel(check=False)
        except Exception:  # noqa: BLE001 - already gone
            pass
        if h.status == QUEUED:
            h.status, h.message = CANCELLED, "cancelled before it started"

    def active(self) -> list[RunHandle]:
        return [h for h in self.handles if h.status in ACTIVE]

    def shutdown(self, cancel: bool = True, wait: float = 20.0) -> None:
        if not cancel:
            return
        for h in self.active():
            self.cancel(h)
        deadline = time.time() + wait
        while self.active() and time.time() < deadline:
            self.poll()
            time.sleep(0.2)
        for h in self.active():
            h.finish(130)
