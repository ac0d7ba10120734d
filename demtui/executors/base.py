"""Where runs execute, behind one small interface: submit → handle (status, cancel, run_dir).

The CLI (single runs and grids), ``demtui reproduce`` and the TUI all launch through an
:class:`Executor`. A submitted run is always a normal run directory, and the process
that writes it holds its lock (demtui.lock), so an executor never needs to know what a
run does, and any run can be resumed, reported or watched however it was started.

Statuses move queued → running → finished | failed | cancelled. ``returncode`` uses
the CLI's exit codes (0 finished, 2 bad input, 3 run failed, 130 cancelled); a run whose
worker died (killed, node lost) is retried by executors that can, and continues from
its finished stages. Torch-free: the TUI imports this module.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = "queued", "running", "finished", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
DONE = (FINISHED, FAILED, CANCELLED)
SUBMITTED_SPEC = "submitted.toml"
#: A worker that died without answering, after its retries (EX_TEMPFAIL: trying again may work).
LOST = 75
EXIT_MEANING = {1: "internal error", 2: "bad input", 3: "run failed", LOST: "worker lost", 130: "cancelled"}
#: Exit codes that mean the same input would fail again: never retried.
NOT_RETRIED = (1, 2, 3)


class ExecutorError(RuntimeError):
    """Raised by executors for misuse (submitting one run directory twice)."""


@dataclass(eq=False)
class RunHandle:
    """One submitted run as its executor sees it."""

    run_dir: Path
    device: str
    resume: bool = False
    status: str = QUEUED
    returncode: int | None = None
    message: str = ""
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    attempts: int = 0
    cancel_requested: bool = False
    cancel_time: float | None = None
    label: str = ""
    summary: dict[str, Any] | None = None
    _executor: Any = field(default=None, repr=False)
    _job: Any = field(default=None, repr=False)  # the executor's own job object (Popen, ObjectRef, submitit Job)
    _log_offset: int = field(default=0, repr=False)  # size of run.log at submission (later lines are this job's)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def cancel(self) -> None:
        """Queued: dropped. Running: asked to stop cleanly (finished stages are kept); again: killed."""
        self._executor.cancel(self)

    def finish(self, returncode: int, message: str = "") -> None:
        """Record how the run ended, in the CLI's exit-code words."""
        self.returncode = returncode
        self.ended = time.time()
        if returncode == 0:
            self.status, self.message = FINISHED, message or "finished"
        elif returncode == 130 or (self.cancel_requested and returncode < 0):
            self.status, self.message = CANCELLED, "cancelled; finished stages are kept (resume continues)"
        else:
            why = EXIT_MEANING.get(returncode, f"killed by signal {-returncode}" if returncode < 0
                                   else f"exit code {returncode}")
            self.status = FAILED
            self.message = f"{why}: {message}" if message else f"run process ended ({why})"

    def finish_with(self, result: dict[str, Any]) -> None:
        """Record a worker's answer (demtui.executors.worker): exit code, sentence, pid, summary."""
        self.pid, self.summary = result.get("pid", self.pid), result.get("summary")
        code = result["returncode"]
        self.finish(code, "" if code in (0, 130) else result.get("message", ""))


class Executor(Protocol):
    """What the CLI, grids and the TUI need from a place to run things."""

    #: name as given to --executor
    name: str

    def submit(self, spec_toml: str | None, run_dir: Path, *, device: str, resume: bool = False,
               label: str = "") -> RunHandle:
        """Queue a run. ``spec_toml`` is the resolved spec (None with ``resume``: the saved one)."""

    def poll(self) -> list[RunHandle]:
        """Advance: start what can start, reap what ended; returns the handles that changed."""

    def cancel(self, handle: RunHandle) -> None: ...

    def active(self) -> list[RunHandle]: ...

    def shutdown(self, cancel: bool = True) -> None:
        """Stop (cancel=True) or leave running every run; queued runs are dropped either way."""


def log_tail(path: Path, lines: int = 5) -> str:
    """The last non-empty lines of a run.log (where a crashed process said why)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 8192))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def last_words(log: Path, lines: int = 4) -> str:
    """What the process printed last (its one-sentence error is often wrapped over lines)."""
    tail = log_tail(log, 40).splitlines()
    starts = [i for i, line in enumerate(tail) if line.startswith("$ ")]
    own = tail[starts[-1] + 1:] if starts else tail
    return " ".join(line.strip() for line in own[-lines:])


def write_submitted_spec(run_dir: Path, spec_toml: str | None) -> None:
    """Leave the spec beside the run for the worker (which may be on another host)."""
    from demtui.store import atomic_write_text

    run_dir.mkdir(parents=True, exist_ok=True)
    if spec_toml is not None:
        atomic_write_text(run_dir / SUBMITTED_SPEC, spec_toml)


def new_handle(executor: Any, spec_toml: str | None, run_dir: Path, *, device: str, resume: bool,
               label: str) -> RunHandle:
    """Every executor's submit starts here: one live handle per run directory, the spec on disk."""
    run_dir = Path(run_dir)
    if any(h.active and h.run_dir.resolve() == run_dir.resolve() for h in executor.handles):
        raise ExecutorError(f"{run_dir.name} is already queued or running.")
    write_submitted_spec(run_dir, spec_toml)
    handle = RunHandle(run_dir=run_dir, device=device, resume=resume, label=label or run_dir.name, _executor=executor)
    executor.handles.append(handle)
    return handle
