"""Typed run events and the events.jsonl writer/reader: the engine ⇄ UI contract.

Every line of ``events.jsonl`` is one JSON object with the common fields
``v`` (schema version), ``seq`` (0, 1, 2 … within the run), ``time`` (Unix seconds),
``run`` (run id) and ``type``, plus the fields of its type listed in EVENT_FIELDS.
docs/events.md documents each type. Readers must ignore unknown types and fields
(new ones may be added without a version bump); a change that removes or renames a
field bumps SCHEMA_VERSION. No torch here: the TUI imports this module.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demtui.errors import RunError

SCHEMA_VERSION = 1

#: type → fields it always carries (beyond v, seq, time, run, type)
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("spec", "device", "resumed", "version"),
    "stage_started": ("stage",),
    "stage_skipped": ("stage", "reason"),
    "progress": ("stage", "done", "total", "info"),
    "metric": ("stage", "name", "step", "value"),
    "entropy": ("phase", "role", "layer", "source", "target", "mean", "bins", "lo", "hi", "counts"),
    "result": ("phase", "target", "metrics"),
    "artifact": ("stage", "path", "kind"),
    "stage_finished": ("stage", "seconds", "summary"),
    "log": ("level", "message"),
    "run_finished": ("summary", "seconds"),
    "run_failed": ("stage", "error"),
    "run_cancelled": ("stage",),
}

Listener = Callable[[dict[str, Any]], None]


@dataclass
class EventBus:
    """Fans events out to listeners (writer, progress view, observer plugins).

    Listener failures never stop a run: a broken progress view or plugin must not lose
    finished work.
    """

    run_id: str
    listeners: list[Listener] = field(default_factory=list)
    seq: int = 0

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        missing = [f for f in EVENT_FIELDS.get(type, ()) if f not in fields]
        if type not in EVENT_FIELDS or missing:
            raise ValueError(f"event {type!r} is unknown or lacks {missing}")  # programming error
        event = {"v": SCHEMA_VERSION, "seq": self.seq, "time": round(time.time(), 3), "run": self.run_id, "type": type}
        event.update(fields)
        self.seq += 1
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a watcher must never stop the run
                pass
        return event


class JsonlWriter:
    """Appends one line per event and flushes, so a tailing reader sees it at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    def __call__(self, event: dict[str, Any]) -> None:
        from demtui.jsonsafe import dumps

        self._fh.write(dumps(event, separators=(",", ":"), default=_jsonable) + "\n")  # strict JSON: no NaN
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_events(path: Path, strict: bool = True) -> list[dict[str, Any]]:
    """Read a whole events.jsonl.

    A truncated *last* line (a run killed mid-write) is dropped; any other bad line
    raises RunError when ``strict`` (resume must not build on a corrupt history).
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or "type" not in event:
                raise ValueError("not an event object")
        except ValueError:
            last = number == len(lines) or all(not rest.strip() for rest in lines[number:])
            if last and not line.endswith("}"):
                break
            if strict:
                raise RunError(
                    f"{path} is corrupt at line {number}; move the run directory aside and "
                    "start a fresh run (finished artifacts in it are kept)."
                ) from None
            continue
        if event.get("v", SCHEMA_VERSION) > SCHEMA_VERSION and strict:
            raise RunError(f"{path} was written by a newer demtui (event schema v{event['v']}); upgrade demtui to read it.")
        events.append(event)
    return events


class EventTail:
    """Incremental reader for a growing events.jsonl (the TUI's follower).

    Keeps the byte offset and any partial trailing line between calls, so each call
    parses only what was appended since the last one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""
        self.bad_lines = 0

    def read_new(self, max_bytes: int = 1 << 20) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self.offset:  # the file was replaced: start over
                    self.offset, self._partial = 0, b""
                fh.seek(self.offset)
                chunk = fh.read(max_bytes)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        out = []
        for raw in complete:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(event, dict) and "type" in event:
                out.append(event)
            else:
                self.bad_lines += 1
        return out


def iter_type(events: list[dict[str, Any]], type: str) -> Iterator[dict[str, Any]]:
    return (e for e in events if e.get("type") == type)
