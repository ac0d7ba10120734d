"""The ``inline`` executor: runs in this process, one after another (the default for a grid).

It exists so a grid on one CPU behaves exactly as before executors (same process, the
live progress view, Ctrl-C stops the grid) while going through the same interface as
every other executor. ``poll()`` runs the next queued run to its end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from demtui.executors.base import ACTIVE, CANCELLED, QUEUED, RUNNING, ExecutorError, RunHandle, write_submitted_spec

#: handle → a context manager yielding the event listeners (progress views) of that run
Listeners = Callable[[RunHandle], AbstractContextManager[list[Callable[[dict[str, Any]], None]]]]


class InlineExecutor:
    name = "inline"

    def __init__(self, registry: str | None = None, listeners: Listeners | None = None) -> None:
        self.registry = registry
        self.listeners = listeners
        self.handles: list[RunHandle] = []
        self.gpus = 0

    def submit(self, spec_toml: str | None, run_dir: Path, *, device: str = "auto", resume: bool = False,
               label: str = "") -> RunHandle:
        run_dir = Path(run_dir)
        if any(h.active and h.run_dir.resolve() == run_dir.resolve() for h in self.handles):
            raise ExecutorError(f"{run_dir.name} is already queued or running.")
        write_submitted_spec(run_dir, spec_toml)
        handle = RunHandle(run_dir=run_dir, device=device, resume=resume, label=label or run_dir.name, _executor=self)
        self.handles.append(handle)
        return handle

    def poll(self) -> list[RunHandle]:
        """Run the next queued run here and now; Ctrl-C cancels it and propagates to the caller."""
        from demtui.executors.worker import run_in_process

        nxt = next((h for h in self.handles if h.status == QUEUED), None)
        if nxt is None:
            return []
        nxt.status, nxt.started, nxt.attempts = RUNNING, time.time(), nxt.attempts + 1
        device = None if nxt.device in ("", "auto") else nxt.device
        views = self.listeners(nxt) if self.listeners else contextlib.nullcontext([])
        with views as listeners:
            result = run_in_process(nxt.run_dir, device, nxt.resume, self.registry, listeners=listeners)
        nxt.finish(result["returncode"], result["message"])
        nxt.summary = result.get("summary")
        if nxt.status == CANCELLED:
            raise KeyboardInterrupt
        return [nxt]

    def cancel(self, handle: RunHandle) -> None:
        if handle.status == QUEUED:
            handle.status, handle.message, handle.cancel_requested = CANCELLED, "cancelled before it started", True

    def active(self) -> list[RunHandle]:
        return [h for h in self.handles if h.status in ACTIVE]

    def shutdown(self, cancel: bool = True) -> None:
        for h in self.handles:
            self.cancel(h)
