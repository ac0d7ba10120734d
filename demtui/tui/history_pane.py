"""History: the runs folder as a table; open, mark, compare side by side, export MD/CSV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from demtui.tui.runinfo import RunInfo, compare_table, export_compare, scan_runs

STATUS_STYLE = {"finished": "green", "failed": "red", "cancelled": "magenta", "running?": "yellow", "died": "bold red",
                "incomplete": "yellow", "unreadable": "red", "empty": "dim"}


NAME_WIDTH = 22


def _num(v: object) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else float("-inf")


#: (label, key, reverse) cycled by `s`.
SORTS = (("date", lambda i: (i.started or 0), True), ("SR after", lambda i: _num(i.summary.get("sr_after")), False),
         ("status", lambda i: (i.status, -(i.started or 0)), False), ("name", lambda i: i.name, False))


def haystack(info: RunInfo) -> str:
    return " ".join([info.name, info.status, *(info.component(s) for s in ("model", "dataset", "attack", "defense"))]).lower()


def compact_pair(info: RunInfo, metric: str) -> str:
    """'0.875→0.025' (the detail line below the table has the long form)."""
    return info.pair(f"{metric}_before", f"{metric}_after").replace(" → ", "→")


def started_text(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "—"


class HistoryPane(Vertical):
    BINDINGS = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("e", "export", "Export MD+CSV"),
        Binding("f5", "rescan", "Rescan"),
        Binding("slash", "filter", "Filter", show=False),
        Binding("s", "sort", "Sort"),
        Binding("m", "report", "Report", show=False),
        Binding("u", "uaps", "UAPs", show=False),
        Binding("y", "copy_command", "Copy CLI", show=False),
    ]

    def __init__(self, runs_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs_dir = runs_dir
        self.infos: list[RunInfo] = []  # what the table shows (filtered, sorted)
        self.all_infos: list[RunInfo] = []
        self.marked: set[str] = set()
        self.filter_text = ""
        self.sort_index = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="history-top"):
            yield Label("Runs folder", classes="top-label")
            yield Input(str(self.runs_dir), id="runs-folder", compact=True)
            yield Input(placeholder="/ filter: name, status, component…", id="history-filter", compact=True)
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="history-detail")

    def on_mount(self) -> None:
        self.query_one("#history-filter").display = False
        self.call_after_refresh(self.rescan)
        table = self.query_one("#history-table", DataTable)
        for label, key in (("✓", "mark"), ("Run", "run"), ("Status", "status"), ("SR → after", "sr"),
                           ("AAcc → after", "aacc"), ("CAcc → after", "cacc"), ("Attack → defense", "pair"),
                           ("Model", "model"), ("Dataset", "dataset"), ("Started", "started")):
            table.add_column(label, key=key)

    # -- scanning (in a thread: many runs must not stall the UI) ---------------------------
    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def rescan(self) -> None:
        infos = scan_runs(self.runs_dir)
        self.app.call_from_thread(self._populate, infos)

    def _populate(self, infos: list[RunInfo]) -> None:
        self.all_infos = infos
        self._show()

    def _show(self) -> None:
        """Filter (every word must appear in the run's name, status or components) and sort."""
        words = self.filter_text.lower().split()
        infos = [i for i in self.all_infos if all(w in haystack(i) for w in words)]
        label, key, reverse = SORTS[self.sort_index % len(SORTS)]
        infos.sort(key=key, reverse=reverse)
        self.infos = infos
        table = self.query_one("#history-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for info in infos:
            table.add_row(*self._cells(info), key=str(info.path))
        if infos:
            table.move_cursor(row=min(cursor, len(infos) - 1))
        folder = self.runs_dir
        shown = f"{len(infos)} of {len(self.all_infos)}" if len(infos) != len(self.all_infos) else f"{len(infos)}"
        self._detail(Text(f"{shown} run(s) in {folder.name or folder}, sorted by {label}" if folder.is_dir()
                          else f"{folder} does not exist yet; runs you launch will be created there.", style="dim"))

    def _cells(self, info: RunInfo) -> tuple[Any, ...]:
        mark = Text("✓", style="bold green") if str(info.path) in self.marked else ""
        name = info.name if len(info.name) <= NAME_WIDTH else info.name[:NAME_WIDTH - 1] + "…"
        return (mark, name, Text(info.status, style=STATUS_STYLE.get(info.status, "")),
                compact_pair(info, "sr"), compact_pair(info, "aacc"), compact_pair(info, "cacc"),
                f"{info.component('attack')} → {info.component('defense')}", info.component("model"),
                info.component("dataset"), started_text(info.started))

    def _detail(self, text: Text | str) -> None:
        self.query_one("#history-detail", Static).update(text)

    def current(self) -> RunInfo | None:
        table = self.query_one("#history-table", DataTable)
        if not self.infos or table.cursor_row >= len(self.infos):
            return None
        return self.infos[table.cursor_row]

    @on(DataTable.RowHighlighted, "#history-table")
    def _highlighted(self) -> None:
        info = self.current()
        if info is not None:
            text = Text(f"{info.name}: {info.component('model')} on {info.component('dataset')} · "
                        f"{info.component('attack')} → {info.component('defense')} · SR "
                        f"{info.pair('sr_before', 'sr_after')} · started {started_text(info.started)}\n", style="dim")
            text.append(f"{info.path}" + (f" — {info.problem}" if info.problem else ""),
                        style="red" if info.problem else "dim")
            self._detail(text)

    @on(DataTable.RowSelected, "#history-table")
    def _open(self) -> None:
        info = self.current()
        if info is not None:
            self.app.open_run(info.path)  # type: ignore[attr-defined]

    @on(Input.Submitted, "#runs-folder")
    def _folder(self, event: Input.Submitted) -> None:
        self.runs_dir = Path(event.value).expanduser()
        self.app.runs_dir = self.runs_dir  # type: ignore[attr-defined]
        self.marked.clear()
        self.rescan()
        self.query_one("#history-table").focus()

    # -- filter and sort -----------------------------------------------------------------
    def action_filter(self) -> None:
        field = self.query_one("#history-filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#history-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._show()

    @on(Input.Submitted, "#history-filter")
    def _filter_done(self) -> None:
        self.query_one("#history-table").focus()

    def action_sort(self) -> None:
        self.sort_index += 1
        self._show()

    # -- actions -------------------------------------------------------------------------
    def action_rescan(self) -> None:
        self.rescan()

    def action_mark(self) -> None:
        info = self.current()
        if info is None:
            return
        key = str(info.path)
        self.marked.symmetric_difference_update({key})
        table = self.query_one("#history-table", DataTable)
        table.update_cell(key, "mark", Text("✓", style="bold green") if key in self.marked else "")
        table.move_cursor(row=min(table.cursor_row + 1, len(self.infos) - 1))

    def action_report(self) -> None:
        info = self.current()
        if info is not None:
            self.app.show_report(info.path)  # type: ignore[attr-defined]

    def action_uaps(self) -> None:
        info = self.current()
        if info is not None:
            self.app.show_uaps(info.path)  # type: ignore[attr-defined]

    def action_copy_command(self) -> None:
        info = self.current()
        if info is not None and info.spec:
            self.app.copy_command(info.spec, info.path)  # type: ignore[attr-defined]

    def chosen(self) -> list[RunInfo]:
        return [i for i in self.infos if str(i.path) in self.marked]

    def action_compare(self) -> None:
        runs = self.chosen()
        if len(runs) < 2:
            self.notify("Mark two or more runs with Space, then press c.", title="Compare", severity="warning")
            return
        self.app.push_screen(CompareScreen(runs, self.runs_dir))

    def action_export(self) -> None:
        runs = self.chosen() or self.infos
        export(self, runs, self.runs_dir)


def export(widget: Any, runs: list[RunInfo], folder: Path) -> None:
    if not runs:
        widget.notify("No runs to export.", title="Export", severity="warning")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        md, csv = export_compare(runs, folder)
    except OSError as exc:
        widget.notify(f"Cannot write to {folder}: {exc.strerror}", title="Export", severity="error")
        return
    widget.notify(f"Wrote {md.name} and {csv.name} in {folder}", title="Export")


class CompareScreen(Screen[None]):
    """Two or more runs side by side: one column per run, the paper's table rows."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back"), Binding("e", "export", "Export MD+CSV")]

    def __init__(self, runs: list[RunInfo], folder: Path) -> None:
        super().__init__()
        self.runs, self.folder = runs, folder

    def compose(self) -> ComposeResult:
        yield Label(f"Comparing {len(self.runs)} runs", id="compare-title")
        yield DataTable(id="compare-table", zebra_stripes=True, cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        header, rows = compare_table(self.runs)
        table = self.query_one("#compare-table", DataTable)
        table.add_columns(*header)
        for row in rows:
            table.add_row(*row)
        table.focus()

    def action_export(self) -> None:
        export(self, self.runs, self.folder)
