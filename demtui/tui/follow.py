"""Tail many runs' events.jsonl from one thread, fairly.

One thread serves every followed run (not one thread each: Textual's thread workers share
a pool of min(32, CPUs+4), so one per watched run exhausted it after six runs on a 2-core
machine and later runs never loaded). Each round reads at most one bounded batch per run,
so a run writing a burst cannot starve the others, and sleeps only when every tail is at
its end. Plain Python: no Textual, no torch; tested on its own.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demtui.events import EventTail

BATCH_BYTES = 64 * 1024


@dataclass
class Batch:
    """New events of one run since the last batch (with the bad-line count and, once, class names)."""

    key: str
    events: list[dict[str, Any]]
    bad_lines: int
    classes: list[str] | None = None


@dataclass
class _Tail:
    run_dir: Path
    tail: EventTail
    bad: int = 0
    have_classes: bool = False
    idle_rounds: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def read_classes(run_dir: Path) -> list[str] | None:
    """The dataset's class names, from results.json once the baseline stage wrote them."""
    try:
        data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        classes = data["stages"]["baseline"]["classes"]
        return [str(c) for c in classes] if isinstance(classes, list) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Follower:
    """The set of followed runs; ``read_round`` is called from the one follower thread."""

    def __init__(self, batch_bytes: int = BATCH_BYTES) -> None:
        self.batch_bytes = batch_bytes
        self._tails: dict[str, _Tail] = {}
        self._lock = threading.Lock()
        self.wake = threading.Event()

    def add(self, key: str, run_dir: Path) -> None:
        with self._lock:
            if key not in self._tails:
                self._tails[key] = _Tail(run_dir, EventTail(run_dir / "events.jsonl"))
        self.wake.set()

    def remove(self, key: str) -> None:
        with self._lock:
            self._tails.pop(key, None)

    def __len__(self) -> int:
        return len(self._tails)

    def idle_seconds(self, key: str, poll: float) -> float:
        """About how long this run's file has not grown (rounds without news × poll interval)."""
        t = self._tails.get(key)
        return t.idle_rounds * poll if t is not None else 0.0

    def read_round(self) -> tuple[list[Batch], bool]:
        """One bounded read per run; returns the batches and whether any file has more to read."""
        with self._lock:
            items = list(self._tails.items())
        out, more = [], False
        for key, t in items:
            start = t.tail.offset
            try:
                events = t.tail.read_new(self.batch_bytes)
            except OSError:  # unreadable for now (permissions, a directory in its place): keep trying
                events = []
            classes = None
            if not t.have_classes and any(e.get("type") == "stage_finished" and e.get("stage") == "baseline"
                                          for e in events):
                classes = read_classes(t.run_dir)
                t.have_classes = classes is not None
            if events or t.tail.bad_lines != t.bad or classes:
                t.bad = t.tail.bad_lines
                t.idle_rounds = 0
                out.append(Batch(key, events, t.bad, classes))
            else:
                t.idle_rounds += 1
            more |= t.tail.offset - start >= self.batch_bytes
        return out, more
