"""Run a grid of runs through an executor: plan, submit, follow, resume, cancel.

A grid is a folder of normal run directories (one per combination) plus a manifest,
``sweep.json``, and its table, ``sweep.md``, both rewritten atomically whenever a cell
changes. The driver holds the folder's ``grid.lock`` so two drivers never share one
grid; each run holds its own ``run.lock``. On ``--resume`` finished cells are kept as they
are and only the others are submitted (each continues from its own finished stages).
Ctrl-C cancels every cell cleanly. The table shows each cell's status and, for a failed
cell, its one-sentence reason.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from demtui import jsonsafe
from demtui.executors.base import ACTIVE, CANCELLED, FAILED, FINISHED, RunHandle
from demtui.lock import DirLock, holder_if_locked
from demtui.store import atomic_write_text

MANIFEST = "sweep.json"
TABLE = "sweep.md"
GRID_LOCK = "grid.lock"
PENDING = "pending"
MANIFEST_VERSION = 2


@dataclass
class Cell:
    """One combination of the grid and what became of it."""

    label: str  # directory name under the grid folder
    values: dict[str, Any]  # axis → value, as given
    spec_toml: str  # the resolved spec it runs
    device: str = "auto"
    status: str = PENDING  # pending | queued | running | finished | failed | cancelled
    message: str = ""
    summary: dict[str, Any] | None = None
    attempts: int = 0
    overhead_s: float | None = None  # executor start (or submission) → run_started: the cost of getting a run going
    seconds: float | None = None  # submit → end

    def manifest_entry(self, root: Path) -> dict[str, Any]:
        entry = asdict(self)
        entry.pop("spec_toml")
        entry["run_dir"] = str(root / self.label)
        return entry


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a run that finished, else None (a missing or partial run must run)."""
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    summary = results.get("summary") if isinstance(results, dict) else None
    if not isinstance(summary, dict):
        return None
    events = run_dir / "events.jsonl"
    try:
        tail = events.read_bytes()[-4096:].decode("utf-8", "replace").strip().splitlines()
        last = json.loads(tail[-1]) if tail else {}
    except (OSError, ValueError):
        last = {}
    return summary if last.get("type") == "run_finished" else None


def run_started_time(run_dir: Path, after: float) -> float | None:
    """When the newest run_started event at or after ``after`` was written (for overhead)."""
    from demtui.events import EventTail

    found = None
    for event in EventTail(run_dir / "events.jsonl").read_new(max_bytes=1 << 24):
        if event.get("type") == "run_started" and float(event.get("time", 0)) >= after - 1:
            found = float(event["time"])
    return found


class Grid:
    """Drives ``cells`` through ``executor`` into ``root``; ``on_change`` hears every update."""

    def __init__(self, root: Path, cells: list[Cell], executor: Any, *, axes: dict[str, list[Any]],
                 on_change: Callable[["Grid", Cell], None] | None = None, poll_seconds: float = 0.2,
                 extra: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.cells = cells
        self.executor = executor
        self.axes = axes
        self.on_change = on_change
        self.poll_seconds = poll_seconds
        self.status = "running"
        self.extra = extra or {}  # more top-level manifest keys (e.g. "table" for a reproduction)
        self._handles: dict[str, RunHandle] = {}

    # -- driving -----------------------------------------------------------------------------
    def run(self, resume: bool) -> str:
        """Run every unfinished cell; returns finished | failed | cancelled (the grid's status)."""
        with DirLock(self.root, GRID_LOCK, what="grid folder"):
            try:
                self._submit_all(resume)
                while any(h.status in ACTIVE for h in self._handles.values()):
                    for handle in self.executor.poll():
                        self._update(handle)
                    time.sleep(self.poll_seconds)
                for handle in self._handles.values():
                    self._update(handle)
            except KeyboardInterrupt:
                self.executor.shutdown(cancel=True)
                for handle in self._handles.values():
                    self._update(handle)
                for cell in self.cells:
                    if cell.status not in (FINISHED, FAILED, CANCELLED):
                        cell.status, cell.message = CANCELLED, "cancelled with the grid (resume continues)"
                self.status = CANCELLED
                self.write()
                return self.status
            else:
                self.executor.shutdown(cancel=False)
        self.status = FAILED if any(c.status != FINISHED for c in self.cells) else FINISHED
        self.write()
        return self.status

    def _submit_all(self, resume: bool) -> None:
        earlier = self._earlier_entries() if resume else {}
        for cell in self.cells:
            run_dir = self.root / cell.label
            summary = finished_summary(run_dir) if resume else None
            if summary is not None:  # kept as the earlier driver recorded it
                old = earlier.get(cell.label, {})
                cell.status, cell.summary, cell.message = FINISHED, summary, old.get("message", "")
                cell.attempts, cell.overhead_s, cell.seconds = (old.get("attempts", 0), old.get("overhead_s"),
                                                                old.get("seconds"))
                continue
            if not resume and run_dir.exists() and any(run_dir.iterdir()):
                from demtui.errors import SpecError

                raise SpecError(f"{run_dir} already holds a run; pass --resume to continue the grid or choose "
                                "another --out.")
        self.write()
        for cell in self.cells:
            if cell.status == FINISHED:
                continue
            run_dir = self.root / cell.label
            holder = holder_if_locked(run_dir)
            if holder is not None:  # a live process still writes it (e.g. a run of a killed driver)
                cell.status, cell.attempts = FAILED, 0
                cell.message = (f"bad input: {run_dir} is being written by {holder.describe()}; wait for it to "
                                "finish or stop it, then --resume the grid")
                continue
            exists = (run_dir / "spec.toml").exists()
            handle = self.executor.submit(cell.spec_toml, run_dir, device=cell.device, resume=exists,
                                          label=cell.label)
            self._handles[cell.label] = handle
            self._update(handle)

    def _earlier_entries(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))
            return {e["label"]: e for e in data.get("sweep", []) if isinstance(e, dict) and "label" in e}
        except (OSError, ValueError, TypeError):
            return {}

    def _update(self, handle: RunHandle) -> None:
        cell = next(c for c in self.cells if c.label == handle.label)
        if cell.status == FAILED and handle.label not in self._handles:
            return
        before = (cell.status, cell.message, cell.attempts)
        cell.status, cell.attempts = handle.status, handle.attempts
        cell.message = handle.message if handle.status != FINISHED else ""
        if cell.overhead_s is None and handle.status != "queued":
            launched = handle.started or handle.submitted  # when the executor started it, where it knows
            started = run_started_time(handle.run_dir, launched)
            if started is not None:
                cell.overhead_s = round(max(0.0, started - launched), 3)
        if handle.status in (FINISHED, FAILED, CANCELLED):
            cell.seconds = round((handle.ended or time.time()) - handle.submitted, 3)
            cell.summary = handle.summary or finished_summary(handle.run_dir) or _partial_summary(handle.run_dir)
        if (cell.status, cell.message, cell.attempts) != before:
            self.write()
            if self.on_change:
                self.on_change(self, cell)

    # -- the manifest and the table -------------------------------------------------------------
    def write(self) -> None:
        entries = [c.manifest_entry(self.root) for c in self.cells]
        overheads = [c.overhead_s for c in self.cells if c.overhead_s is not None]
        manifest = {"version": MANIFEST_VERSION, "kind": "grid", "status": self.status,
                    "executor": getattr(self.executor, "name", type(self.executor).__name__),
                    "axes": self.axes, "overhead_s_median": statistics.median(overheads) if overheads else None,
                    **self.extra, "sweep": entries}
        atomic_write_text(self.root / MANIFEST, jsonsafe.dumps(manifest, indent=2, default=str))
        write_table(self.root, entries)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.status] = out.get(c.status, 0) + 1
        return out


def _partial_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return results.get("summary") if isinstance(results, dict) else None


METRICS = ("cacc_before", "cacc_after", "sr_before", "sr_after", "aacc_before", "aacc_after", "delta_cacc",
           "secondary_sr")


def table_rows(entries: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per cell: its axis values, status, metrics and, when it failed, why."""
    keys = list(entries[0]["values"]) if entries else []
    header = [*keys, "status", *METRICS, "note"]

    def fmt(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = []
    for e in entries:
        summary = e.get("summary") or {}
        note = e.get("message", "") if e.get("status") not in (FINISHED,) else ""
        if e.get("attempts", 0) > 1:
            note = f"{e['attempts']} attempts" + (f"; {note}" if note else "")
        rows.append([str(e["values"][k]) for k in keys] + [e.get("status", "")]
                    + [fmt(summary.get(m)) for m in METRICS] + [note.replace("|", "/")])
    return header, rows


def write_table(root: Path, entries: list[dict[str, Any]]) -> None:
    header, rows = table_rows(entries)
    lines = ["# demtui sweep", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "Each row is a full run directory next to this file (`demtui report DIR` for its details)."]
    atomic_write_text(root / TABLE, "\n".join(lines) + "\n")


def rebuild_table(root: Path) -> Path:
    """Redo sweep.md from the manifest, refreshing each cell's summary from its run directory."""
    data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    entries = data.get("sweep", [])
    for entry in entries:
        run_dir = root / entry["label"] if "label" in entry else Path(entry["run_dir"])
        entry["summary"] = finished_summary(run_dir) or _partial_summary(run_dir) or entry.get("summary")
    write_table(root, entries)
    return root / TABLE
