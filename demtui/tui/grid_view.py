"""Grids in the TUI: launch a sweep through a core executor, and watch it as a matrix.

A sweep is driven by `demtui run --sweep … --executor …` in its own process (the same
code path as the CLI: demtui.launch and demtui.grid), which keeps the grid folder's
sweep.json manifest current. This screen only reads that manifest: rows are the first
axis's values, columns the combinations of the others; a cell shows the run's SR after
the defense, coloured, and its status. Enter drills down into that run's Watch.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

EXECUTORS = ("local", "inline", "ray", "slurm")
BASE_SPEC = "sweep-base.toml"
DRIVER_LOG = "driver.log"
MARK = {"finished": ("✓", ""), "running": ("▶", "yellow"), "queued": ("·", "cyan"), "pending": ("·", "dim"),
        "failed": ("✗", "bold red"), "cancelled": ("■", "magenta")}


def parse_sweep_text(text: str) -> list[str]:
    """'attack.eps=5/255,10/255; defense.name=democratic,none' → the --sweep arguments."""
    return [part.strip() for part in text.replace("\n", ";").split(";") if part.strip()]


PRESET = re.compile(r"^\s*(table\d+)(?::(tiny|paper))?\s*$")


def preset_of_text(text: str) -> tuple[str, str] | None:
    """'table4' or 'table4:paper' in the Sweep field: a paper table (demtui reproduce), else None."""
    m = PRESET.match(text)
    return (m.group(1), m.group(2) or "tiny") if m else None


def check_sweep_text(text: str) -> str:
    """'' when the axes parse as the CLI would parse them (or name a paper table), else its sentence."""
    from demtui.errors import DemtuiError, did_you_mean
    from demtui.sweep import parse_sweep_flags

    preset = preset_of_text(text)
    if preset is not None:
        from demtui.reproduce import table_ids

        ids = table_ids()
        if preset[0] not in ids:
            return f"There is no paper table '{preset[0]}'.{did_you_mean(preset[0], ids)} Tables: {', '.join(ids)}."
        return ""

    try:
        parse_sweep_flags(parse_sweep_text(text))
    except DemtuiError as exc:
        return str(exc)
    return ""


def driver_command(root: Path, sweeps: list[str], executor: str, jobs: int | None = None) -> list[str]:
    preset = preset_of_text(sweeps[0]) if len(sweeps) == 1 else None
    if preset is not None:  # a paper table: its own grid, on the same executors
        return [sys.executable, "-m", "demtui", "reproduce", preset[0], "--preset", preset[1], "--executor", executor,
                "--quiet", "--out", str(root)]
    cmd = [sys.executable, "-m", "demtui", "run", "--headless", "--quiet", "--spec", str(root / BASE_SPEC)]
    for s in sweeps:
        cmd += ["--sweep", s]
    cmd += ["--executor", executor]
    if jobs and executor == "local":
        cmd += ["--jobs", str(jobs)]
    return cmd + ["--out", str(root)]


def start_sweep(root: Path, spec_toml: str, sweeps: list[str], executor: str,
                jobs: int | None = None) -> subprocess.Popen[bytes]:
    """Write the base spec into the grid folder and start its driver (its output goes to driver.log)."""
    from demtui.store import atomic_write_text

    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / BASE_SPEC, spec_toml)
    with open(root / DRIVER_LOG, "ab") as log:
        return subprocess.Popen(driver_command(root, sweeps, executor, jobs), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def is_grid_dir(path: Path) -> bool:
    return any((path / n).exists() for n in ("sweep.json", BASE_SPEC, DRIVER_LOG))


@dataclass
class GridData:
    axes: dict[str, list[Any]] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)
    status: str = "starting"
    executor: str = ""
    problem: str = ""


def read_grid(root: Path) -> GridData:
    """The manifest as it stands (a driver rewrites it atomically); problems become a sentence."""
    try:
        data = json.loads((root / "sweep.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        last = _last_line(root / DRIVER_LOG)
        return GridData(problem=f"the grid has not started yet{': ' + last if last else ''}")
    except (OSError, ValueError) as exc:
        return GridData(problem=f"sweep.json cannot be read ({exc})")
    if not isinstance(data, dict):
        return GridData(problem="sweep.json is not a demtui grid manifest")
    axes = data.get("axes") if isinstance(data.get("axes"), dict) else {}
    cells = [c for c in data.get("sweep", []) if isinstance(c, dict)]
    return GridData(axes=axes, cells=cells, status=str(data.get("status", "")), executor=str(data.get("executor", "")))


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def matrix(grid: GridData) -> tuple[str, list[str], list[str], dict[tuple[int, int], dict[str, Any]]]:
    """(row axis, row labels, column labels, (row, col) → cell) for the grid's cells."""
    axes = {k: list(v) for k, v in grid.axes.items()}
    for cell in grid.cells:  # values the manifest's axes do not name (a reproduction's victims, seeds)
        for k, v in (cell.get("values") or {}).items():
            seen = axes.setdefault(k, [])
            if str(v) not in [str(x) for x in seen]:
                seen.append(v)
    axes = {k: v for k, v in axes.items() if len(v) > 1 or k in grid.axes}
    keys = list(axes)
    if not keys:
        return "", [], [], {}
    row_key, col_keys = keys[0], keys[1:]
    rows = [str(v) for v in axes[row_key]]
    combos = list(itertools.product(*(axes[k] for k in col_keys))) if col_keys else [()]
    cols = [",".join(f"{axis_name(k)}={v}" for k, v in zip(col_keys, combo)) for combo in combos] \
        if col_keys else ["SR after"]
    where: dict[tuple[int, int], dict[str, Any]] = {}
    for cell in grid.cells:
        values = {k: str(v) for k, v in (cell.get("values") or {}).items()}
        try:
            r = rows.index(values.get(row_key, ""))
            c = next(i for i, combo in enumerate(combos)
                     if all(values.get(k) == str(v) for k, v in zip(col_keys, combo)))
        except (ValueError, StopIteration):
            continue
        where[(r, c)] = cell
    return row_key, rows, cols, where


def axis_name(key: str) -> str:
    """'defense.name' → 'defense'; 'attack.eps' → 'eps' (short column and row headers)."""
    section, _, param = key.partition(".")
    return section if param == "name" else param or section


def cell_text(cell: dict[str, Any] | None) -> Text:
    """'✓ 0.025' coloured by SR after (green: the defense holds; red: the attack still works)."""
    if cell is None:
        return Text("—", style="dim")
    status = str(cell.get("status", "pending"))
    mark, style = MARK.get(status, ("?", ""))
    summary = cell.get("summary") or {}
    sr = summary.get("sr_after")
    if isinstance(sr, (int, float)) and not isinstance(sr, bool):
        colour = "green" if sr <= 0.1 else "yellow" if sr <= 0.3 else "red"
        return Text.assemble((mark + " ", style), (f"{sr:.3f}", f"bold {colour}"))
    before = summary.get("sr_before")
    if status == "finished" and isinstance(before, (int, float)) and not isinstance(before, bool):
        return Text.assemble((mark + " ", style), (f"{before:.3f}", "bold red"), (" no defense", "dim"))
    return Text(f"{mark} {status}", style=style or "dim")


class GridScreen(Screen[None]):
    """One grid as a matrix; refreshes from sweep.json every second."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back"), Binding("enter", "drill", "Watch run"),
                Binding("x", "cancel_grid", "Cancel grid"), Binding("f5", "reload", "Reload")]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.where: dict[tuple[int, int], dict[str, Any]] = {}
        self._shape: tuple[Any, ...] = ()

    def compose(self) -> ComposeResult:
        yield Label(f"Grid {self.root.name}", id="grid-title")
        yield DataTable(id="grid-table", cursor_type="cell", zebra_stripes=True)
        yield Static("", id="grid-detail")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.action_reload()
        self.set_interval(1.0, self.action_reload)
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        grid = read_grid(self.root)
        row_key, rows, cols, self.where = matrix(grid)
        table = self.query_one("#grid-table", DataTable)
        shape = (row_key, tuple(rows), tuple(cols))
        if shape != self._shape:
            self._shape = shape
            table.clear(columns=True)
            table.add_column(axis_name(row_key) if row_key else "", key="row")
            for i, col in enumerate(cols):
                table.add_column(col, key=f"c{i}")
            for r, row in enumerate(rows):
                table.add_row(row, *(cell_text(self.where.get((r, c))) for c in range(len(cols))), key=f"r{r}")
        else:
            for r in range(len(rows)):
                for c in range(len(cols)):
                    table.update_cell(f"r{r}", f"c{c}", cell_text(self.where.get((r, c))))
        counts: dict[str, int] = {}
        for cell in grid.cells:
            counts[str(cell.get("status"))] = counts.get(str(cell.get("status")), 0) + 1
        title = f"Grid {self.root.name} · {grid.status or '…'}"
        if grid.executor:
            title += f" on {grid.executor}"
        if counts:
            title += " · " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        self.query_one("#grid-title", Label).update(title)
        self._detail(grid.problem)

    def _current(self) -> dict[str, Any] | None:
        table = self.query_one("#grid-table", DataTable)
        row, col = table.cursor_coordinate
        return self.where.get((row, col - 1)) if col >= 1 else None

    def _detail(self, problem: str = "") -> None:
        cell = self._current()
        text = Text(problem, style="yellow") if problem else Text()
        if cell is not None:
            s = cell.get("summary") or {}
            sr = f"SR {s.get('sr_before', '—')} → {s.get('sr_after', '—')}" if s else "no numbers yet"
            text.append(f"{cell.get('label')}: {cell.get('status')} · {sr}", style="dim")
            if cell.get("message"):
                text.append(f"\n{cell['message']}", style="red" if cell.get("status") == "failed" else "dim")
        self.query_one("#grid-detail", Static).update(text)

    def on_data_table_cell_highlighted(self) -> None:
        self._detail()

    def on_data_table_cell_selected(self) -> None:
        self.action_drill()

    def action_drill(self) -> None:
        cell = self._current()
        run_dir = Path(str(cell.get("run_dir"))) if cell and cell.get("run_dir") else None
        if run_dir is None or not run_dir.exists():
            self.notify("This cell has no run directory yet.", title="Grid", severity="warning")
            return
        self.app.pop_screen()
        self.app.call_later(self.app.open_run, run_dir)  # type: ignore[attr-defined]

    def action_cancel_grid(self) -> None:
        """SIGINT to the grid's driver: it cancels every cell cleanly (resume continues later)."""
        proc = getattr(self.app, "grids", {}).get(str(self.root))
        if proc is None or proc.poll() is not None:
            self.notify("This grid's driver was not started by this window (or has ended); stop it where it runs "
                        "(Ctrl-C).", title="Grid", severity="warning")
            return
        os.kill(proc.pid, signal.SIGINT)
        self.notify("Cancelling the grid…", title="Grid")
