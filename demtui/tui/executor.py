"""Launching runs behind one small interface: submit(spec) → handle (status, cancel, run_dir).

``LocalProcessExecutor`` starts each run as its own process
(``demtui run --headless --spec … --out … --quiet``, stdout/stderr to ``<run>/run.log``
so native CUDA output never reaches the screen) and keeps a queue: at most
``per_device`` runs at a time on each device. A crash in a run never reaches the UI;
the handle records its exit code and the last line of its log. Torch-free and
Textual-free, so another front end (or a Ray executor) can sit behind the same calls.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from demtui.store import atomic_write_text
from demtui.tui.runinfo import log_tail

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = "queued", "running", "finished", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
SUBMITTED_SPEC = "submitted.toml"
EXIT_MEANING = {1: "internal error", 2: "bad input", 3: "run failed", 130: "cancelled"}


@dataclass(eq=False)
class RunHandle:
    """One submitted run; ``status`` moves queued → running → finished/failed/cancelled."""

    run_dir: Path
    device: str
    resume: bool = False
    status: str = QUEUED
    returncode: int | None = None
    message: str = ""
    submitted: float = field(default_factory=time.time)
    pid: int | None = None
    cancel_requested: bool = False
    cancel_time: float | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _executor: Any = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def cancel(self) -> None:
        """Queued: dropped. Running: SIGTERM (the run stops cleanly); a second call kills it."""
        self._executor.cancel(self)


class Executor(Protocol):
    def submit(self, spec_toml: str | None, run_dir: Path, *, device: str, resume: bool = False) -> RunHandle: ...
    def poll(self) -> list[RunHandle]: ...
    def shutdown(self, cancel: bool = True) -> None: ...


def last_words(log: Path, lines: int = 4) -> str:
    """What the process printed last (its one-sentence error is often wrapped over lines)."""
    tail = log_tail(log, 40).splitlines()
    starts = [i for i, line in enumerate(tail) if line.startswith("$ ")]
    own = tail[starts[-1] + 1:] if starts else tail
    return " ".join(line.strip() for line in own[-lines:])


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
    return cmd


class LocalProcessExecutor:
    """A process per run, queued per device; call ``poll()`` regularly (the TUI does, 2×/s)."""

    def __init__(self, per_device: int = 1, gpus: int = 0, env: dict[str, str] | None = None,
                 command: Callable[[Path, Path | None, str, bool], list[str]] = default_command,
                 kill_after: float = 20.0) -> None:
        self.per_device = per_device
        self.gpus = gpus
        self.env = env
        self.command = command
        self.kill_after = kill_after
        self.handles: list[RunHandle] = []

    def submit(self, spec_toml: str | None, run_dir: Path, *, device: str, resume: bool = False) -> RunHandle:
        """Queue a run. ``spec_toml`` is the spec to run (None with ``resume``: the saved one)."""
        run_dir = Path(run_dir)
        if any(h.active and h.run_dir.resolve() == run_dir.resolve() for h in self.handles):
            raise RuntimeError(f"{run_dir.name} is already queued or running.")
        run_dir.mkdir(parents=True, exist_ok=True)
        if spec_toml is not None:
            atomic_write_text(run_dir / SUBMITTED_SPEC, spec_toml)
        handle = RunHandle(run_dir=run_dir, device=device, resume=resume, _executor=self)
        self.handles.append(handle)
        self.poll()
        return handle

    def running_on(self, key: str) -> int:
        return sum(1 for h in self.handles if h.status == RUNNING and device_key(h.device, self.gpus) == key)

    def poll(self) -> list[RunHandle]:
        """Reap finished processes, start queued runs whose device is free; returns changed handles."""
        changed = []
        for h in self.handles:
            if h.status == RUNNING and h._proc is not None and h._proc.poll() is not None:
                self._finish(h, h._proc.returncode)
                changed.append(h)
            elif h.status == RUNNING and h.cancel_requested and h._proc is not None:
                if h.cancel_time is not None and time.time() - h.cancel_time > self.kill_after:
                    self._signal(h, signal.SIGKILL)
        for h in self.handles:
            if h.status == QUEUED and self.running_on(device_key(h.device, self.gpus)) < self.per_device:
                self._start(h)
                changed.append(h)
        return changed

    def _start(self, h: RunHandle) -> None:
        spec_file = h.run_dir / SUBMITTED_SPEC
        cmd = self.command(h.run_dir, None if h.resume else spec_file, h.device, h.resume)
        try:
            with open(h.run_dir / "run.log", "ab") as log:
                log.write(f"$ {' '.join(cmd)}\n".encode())
                log.flush()
                h._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env=self.env, start_new_session=True)
        except OSError as exc:
            h.status, h.message = FAILED, f"could not start the run process: {exc}"
            return
        h.pid, h.status = h._proc.pid, RUNNING

    def _finish(self, h: RunHandle, rc: int) -> None:
        h.returncode = rc
        if rc == 0:
            h.status, h.message = FINISHED, "finished"
        elif rc == 130 or (h.cancel_requested and rc < 0):
            h.status, h.message = CANCELLED, "cancelled; finished stages are kept (resume continues)"
        else:
            why = EXIT_MEANING.get(rc, f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}")
            last = last_words(h.run_dir / "run.log")
            h.status, h.message = FAILED, f"run process ended ({why}): {last}" if last else f"run process ended ({why})"

    def _signal(self, h: RunHandle, sig: int) -> None:
        try:
            if h._proc is not None and h._proc.poll() is None:
                os.kill(h._proc.pid, sig)
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
        return [h for h in self.handles if h.active]

    def shutdown(self, cancel: bool = True, wait: float = 10.0) -> None:
        """Cancel (or leave running, detached) every run; queued runs are dropped either way."""
        for h in self.handles:
            if h.status == QUEUED:
                self.cancel(h)
            elif h.status == RUNNING and cancel:
                self.cancel(h)
        if not cancel:
            return
        deadline = time.time() + wait
        for h in self.handles:
            if h._proc is None or h.status != RUNNING:
                continue
            try:
                h._proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self._signal(h, signal.SIGKILL)
                h._proc.wait()
            self._finish(h, h._proc.returncode)
