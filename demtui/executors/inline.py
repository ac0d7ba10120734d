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

from demtui.executors.base import (
    ACTIVE,
    CANCELLED,
    QUEUED,
    RUNNING,
    RunHandle,
    new_handle,
)

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
        return new_handle(self, spec_toml, run_dir, device=device, resume=resume, label=label)

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
        nxt.finish_with(result)
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
