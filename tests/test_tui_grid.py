"""Grids in the TUI (issue 12, part 5): a sweep launched from Compose through a core executor,
and the grid as a matrix (SR after per cell, status) with drill-down into a run's Watch."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from textual.widgets import DataTable, Input, Select

from demtui.devices import Device
from demtui.tui import grid_view
from demtui.tui.app import make_app
from demtui.tui.compose_pane import ComposePane
from demtui.tui.grid_view import GridScreen, driver_command, matrix, read_grid
from demtui.tui.sample import write_sample_grid

DEVICES = [Device("auto", "auto"), Device("cpu", "CPU")]


def sync(test: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))
    return run


async def wait_for(pilot: Any, cond: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what or cond}")


def write_grid(root: Path) -> Path:
    """A 2×2 grid as a driver leaves it: two finished cells, one failed, one running."""
    return write_sample_grid(root)


def test_matrix_places_every_cell() -> None:
    grid = grid_view.GridData(axes={"a.x": [1, 2], "b.y": ["p", "q"]},
                              cells=[{"values": {"a.x": 2, "b.y": "q"}, "status": "finished"},
                                     {"values": {"a.x": 1, "b.y": "p"}, "status": "running"}])
    row_key, rows, cols, where = matrix(grid)
    assert (row_key, rows, cols) == ("a.x", ["1", "2"], ["y=p", "y=q"])
    assert where[(1, 1)]["status"] == "finished" and where[(0, 0)]["status"] == "running"
    assert (0, 1) not in where


@sync
async def test_grid_view_shows_sr_after_per_cell_and_drills_down(tmp_path: Path) -> None:
    root = write_grid(tmp_path / "runs" / "g1")
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f4")
        history = app.query_one("#history-pane")
        await wait_for(pilot, lambda: [i.status for i in history.infos] == ["grid 2/4"], 10, "grid in History")
        await pilot.press("enter")
        assert isinstance(app.screen, GridScreen)
        table = app.screen.query_one("#grid-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, 5)
        cells = [[str(c) for c in table.get_row_at(r)] for r in range(2)]
        assert cells[0] == ["df-uap", "✓ 0.025", "✓ 0.600"]
        assert cells[1] == ["fgsm-uap", "✗ failed", "▶ running"]
        assert "2 finished" in str(app.screen.query_one("#grid-title").render())
        table.move_cursor(row=1, column=1)
        await pilot.pause(0.1)
        assert "CollapseError" in str(app.screen.query_one("#grid-detail").render())
        table.move_cursor(row=0, column=1)
        await pilot.press("enter")  # drill down: that run in Watch
        key = str((root / "attack.name=df-uap,defense.name=democratic").resolve())
        assert app.query_one("#main-tabs").active == "watch" and app.query_one("#watch-pane").key == key


@sync
async def test_compose_launches_a_sweep_through_the_chosen_executor(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    real = grid_view.driver_command

    def fake(root: Path, sweeps: list[str], executor: str, jobs: int | None = None) -> list[str]:
        started.append(real(root, sweeps, executor, jobs))
        return ["python3", "-c", "pass"]

    monkeypatch.setattr(grid_view, "driver_command", fake)
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(ComposePane)
        await wait_for(pilot, lambda: "✓ valid" in str(app.query_one("#spec-status").render()), 15, "valid")
        sweep = pane.query_one("#run-sweep", Input)
        sweep.value = "attack.nope"
        await wait_for(pilot, lambda: "✗" in str(app.query_one("#spec-status").render()), 5, "bad axis refused")
        assert sweep.has_class("-bad")
        sweep.value = "attack.eps=5/255,10/255; defense.name=democratic,none"
        pane.query_one("#run-executor", Select).value = "inline"
        pane.query_one("#run-name", Input).value = "g2"
        await wait_for(pilot, lambda: "✓ valid" in str(app.query_one("#spec-status").render()), 5, "valid sweep")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen), 5, "the grid view")
    root = tmp_path / "runs" / "g2"
    assert started == [driver_command(root, ["attack.eps=5/255,10/255", "defense.name=democratic,none"], "inline")]
    assert "--executor" in started[0] and started[0][started[0].index("--executor") + 1] == "inline"
    assert (root / "sweep-base.toml").exists()
    assert read_grid(root).problem.startswith("the grid has not started yet")


def test_a_paper_table_in_the_sweep_field_runs_demtui_reproduce(tmp_path: Path) -> None:
    from demtui.tui.grid_view import check_sweep_text, preset_of_text

    assert preset_of_text("table4") == ("table4", "tiny") and preset_of_text("table2:paper") == ("table2", "paper")
    assert check_sweep_text("table4") == ""
    assert "no paper table 'table99'" in check_sweep_text("table99")
    cmd = driver_command(tmp_path / "t4", ["table4"], "local")
    assert cmd[2:] == ["demtui", "reproduce", "table4", "--preset", "tiny", "--executor", "local", "--quiet",
                       "--out", str(tmp_path / "t4")]


def test_matrix_spreads_values_the_axes_do_not_name() -> None:
    """A reproduction's manifest names only its rows; victims become columns."""
    grid = grid_view.GridData(axes={"row": ["a", "b"]},
                              cells=[{"values": {"row": r, "victim": v, "run.seed": 0}, "status": "finished"}
                                     for r in ("a", "b") for v in ("wrn", "resnet")])
    row_key, rows, cols, where = matrix(grid)
    assert (rows, cols) == (["a", "b"], ["victim=wrn", "victim=resnet"]) and len(where) == 4
