"""The ``local`` executor: a process per run on this host, with slots per device.

Each run is the same command a user would type (``demtui run --headless --out DIR
--spec DIR/submitted.toml``) in this interpreter, its stdout/stderr in ``DIR/run.log``
so native CUDA output never reaches a screen. At most ``per_device`` runs share a
device (one per GPU by default) and at most ``jobs`` run at once. A run whose process
was killed (not cancelled, not failed on its own) is retried ``max_retries`` times with
``--resume``, so it continues from its finished stages. Call ``poll()`` regularly: the
grid driver does it several times a second, the TUI twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from demtui.executors.base import (
    ACTIVE,
    CANCELLED,
    QUEUED,
    RUNNING,
    SUBMITTED_SPEC,
    RunHandle,
    last_words,
    new_handle,
)

Command = Callable[[Path, "Path | None", str, bool], list[str]]


def device_key(device: str, gpus: int = 0) -> str:
    """Which queue a device string belongs to ('auto' means the first GPU when one exists)."""
    d = (device or "auto").strip().lower()
    if d == "auto":
        return "cuda:0" if gpus else "cpu"
    return "cuda:0" if d == "cuda" else d


def default_command(run_dir: Path, spec_file: Path | None, device: str, resume: bool) -> list[str]:
    """The child command line: the same CLI a user would type, in this interpreter."""
    cmd = [sys.executable, "-c", "from demtui.cli import main; main()", "run", "--headless", "--quiet",
           "--out", str(run_dir)]
    if spec_file is not None:
        cmd += ["--spec", str(spec_file)]
    if resume:
        cmd += ["--resume", "--device", device]
    elif device and spec_file is not None:
        cmd += ["--device", device]
    return cmd


def _term_on_parent_death() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux), so a killed grid driver
    does not leave orphans writing its runs; SIGTERM is the engine's clean cancel."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalProcessExecutor:
    """Processes on this host, queued per device.

    :param jobs: most runs at once over all devices (0: no limit beyond the device slots).
    :param devices: devices to spread runs over; a run asking for ``auto`` gets the least
        busy of them. Empty: each run keeps the device its spec names.
    :param per_device: runs sharing one device at a time.
    """

    name = "local"

    def __init__(self, jobs: int = 0, devices: list[str] | None = None, per_device: int = 1, gpus: int = 0,
                 env: dict[str, str] | None = None, command: Command = default_command,
                 kill_after: float = 20.0, max_retries: int = 0, die_with_parent: bool = False) -> None:
        self.jobs = jobs
        self.devices = [device_key(d, gpus) for d in devices or []]
        self.per_device = per_device
        self.gpus = gpus
        self.env = env
        self.command = command
        self.kill_after = kill_after
        self.max_retries = max_retries
        self.die_with_parent = die_with_parent  # a grid's runs stop (cleanly) if its driver is killed
        self.handles: list[RunHandle] = []

    def submit(self, spec_toml: str | None, run_dir: Path, *, device: str = "auto", resume: bool = False,
               label: str = "") -> RunHandle:
        """Queue a run. ``spec_toml`` is the spec to run (None with ``resume``: the saved one)."""
        handle = new_handle(self, spec_toml, run_dir, device=device, resume=resume, label=label)
        self.poll()
        return handle

    def running_on(self, key: str) -> int:
        return sum(1 for h in self.handles if h.status == RUNNING and device_key(h.device, self.gpus) == key)

    def _slot_for(self, h: RunHandle) -> str | None:
        """The device this queued run may start on now, or None to keep it waiting."""
        if self.jobs and sum(1 for x in self.handles if x.status == RUNNING) >= self.jobs:
            return None
        wanted = (h.device or "auto").strip().lower()
        if self.devices and wanted == "auto":
            free = [d for d in self.devices if self.running_on(d) < self.per_device]
            return min(free, key=self.running_on) if free else None
        return h.device if self.running_on(device_key(h.device, self.gpus)) < self.per_device else None

    def poll(self) -> list[RunHandle]:
        """Reap finished processes, start queued runs whose device is free; returns changed handles."""
        changed = []
        for h in self.handles:
            proc = h._job
            if h.status == RUNNING and proc is not None and proc.poll() is not None:
                self._ended(h, proc.returncode)
                changed.append(h)
            elif h.status == RUNNING and h.cancel_requested and proc is not None:
                if h.cancel_time is not None and time.time() - h.cancel_time > self.kill_after:
                    self._signal(h, signal.SIGKILL)
        for h in self.handles:
            if h.status == QUEUED:
                device = self._slot_for(h)
                if device is not None:
                    self._start(h, device)
                    changed.append(h)
        return changed

    def _ended(self, h: RunHandle, rc: int) -> None:
        lost = rc < 0 and not h.cancel_requested  # killed from outside: the worker was lost, not the input bad
        if lost and h.attempts <= self.max_retries:
            h.status, h.resume, h._job = QUEUED, True, None
            h.message = f"process killed by signal {-rc}; retrying from its finished stages"
            return
        last = last_words(h.run_dir / "run.log") if rc not in (0, 130) else ""
        h.finish(rc, last)

    def _start(self, h: RunHandle, device: str) -> None:
        h.device = device
        spec_file = h.run_dir / SUBMITTED_SPEC
        cmd = self.command(h.run_dir, None if h.resume or not spec_file.exists() else spec_file, device, h.resume)
        try:
            with open(h.run_dir / "run.log", "ab") as log:
                log.write(f"$ {' '.join(cmd)}\n".encode())
                log.flush()
                h._job = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=self.env, start_new_session=True,
                                          preexec_fn=_term_on_parent_death if self.die_with_parent else None)
        except OSError as exc:
            h.finish(1, f"could not start the run process: {exc}")
            return
        h.pid, h.status, h.started = h._job.pid, RUNNING, time.time()
        h.attempts += 1

    def _signal(self, h: RunHandle, sig: int) -> None:
        try:
            if h._job is not None and h._job.poll() is None:
                os.kill(h._job.pid, sig)
        except ProcessLookupError:
            pass

    def cancel(self, h: RunHandle) -> None:
        if h.status == QUEUED:
            h.status, h.message, h.cancel_requested = CANCELLED, "cancelled before it started", True
        elif h.status == RUNNING:
            if h.cancel_requested:
                self._signal(h, signal.SIGKILL)
            else:
                h.cancel_requested = True
                h.cancel_time = time.time()
                self._signal(h, signal.SIGTERM)

    def active(self) -> list[RunHandle]:
        return [h for h in self.handles if h.status in ACTIVE]

    def shutdown(self, cancel: bool = True, wait: float = 10.0) -> None:
        """Cancel (or leave running, detached) every run; queued runs are dropped either way."""
        for h in self.handles:
            if h.status == QUEUED or (h.status == RUNNING and cancel):
                self.cancel(h)
        if not cancel:
            return
        deadline = time.time() + wait
        for h in self.handles:
            if h._job is None or h.status != RUNNING:
                continue
            try:
                h._job.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self._signal(h, signal.SIGKILL)
                h._job.wait()
            h.finish(h._job.returncode)
