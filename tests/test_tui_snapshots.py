"""Snapshots (pytest-textual-snapshot) of the main screens at 100×30, from synthetic run folders.

The runs come from ``demtui.tui.sample`` (fixed timestamps and numbers), the device list is
fixed, and the clock is UTC, so nothing that changes between machines is rendered.
Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from demtui.tui.app import make_app
from demtui.devices import Device
from demtui.tui.sample import write_sample_run

SIZE = (100, 30)
DEVICES = [Device("auto", "auto (GPU when available)"), Device("cpu", "CPU"), Device("cuda:0", "cuda:0 NVIDIA H100")]


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    write_sample_run(tmp_path / "runs" / "sample-full")
    write_sample_run(tmp_path / "runs" / "sample-live", stop_after="analyse")
    write_sample_run(tmp_path / "runs" / "sample-weak", strength=0.3, attack="fgsm-uap", defense="input-smoothing")
    write_sample_run(tmp_path / "runs" / "sample-failed", stop_after="attack", ending="failed")
    yield Path("runs")
    monkeypatch.delenv("TZ")
    time.tzset()


def app_for(runs: Path) -> Any:
    return make_app(runs_dir=runs, devices=list(DEVICES))


async def settle(pilot: Any, seconds: float = 0.5) -> None:
    await pilot.pause(seconds)
    await pilot.wait_for_scheduled_animations()


async def until(pilot: Any, cond: Any, timeout: float = 10.0) -> None:
    """Wait for the follower thread / scan worker instead of guessing a delay."""
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await pilot.pause(0.05)


def watch(run: str, tab: str = "tab-entropy", keys: tuple[str, ...] = ()):
    async def run_before(pilot: Any) -> None:
        # The screenshot helper calls this before the first refresh; TabbedContent applies its
        # `initial` tab on mount, which would undo open_run's switch to Watch. Let it mount first.
        await settle(pilot, 0.2)
        key = pilot.app.open_run(Path("runs") / run)
        await until(pilot, lambda: pilot.app.views[key].status != "waiting")
        await settle(pilot)
        pilot.app.query_one("#watch-tabs").active = tab
        await pilot.press(*keys)
        await settle(pilot, 0.3)
        assert pilot.app.query_one("#main-tabs").active == "watch"
    return run_before


def test_compose_screen(snap_compare, runs: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await until(pilot, lambda: "valid" in str(pilot.app.query_one("#spec-status").render()))
        await settle(pilot, 0.2)
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=run_before)


def test_watch_live_run_entropy(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=watch("sample-live", keys=("right_square_bracket",) * 5))


def test_watch_finished_run_entropy_one_target(snap_compare, runs: Path) -> None:
    keys = ("right_square_bracket",) * 5 + ("t",)
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=watch("sample-full", keys=keys))


def test_watch_results_table(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=watch("sample-full", "tab-results"))


def test_watch_loss_curve(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=watch("sample-full", "tab-loss"))


def test_watch_failed_run(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=watch("sample-failed", "tab-log"))


async def _history(pilot: Any) -> None:
    await until(pilot, lambda: pilot.app.query("#history-pane"))  # mounted once Compose is usable
    await pilot.press("f4")
    await until(pilot, lambda: len(pilot.app.query_one("#history-pane").infos) == 4
                and pilot.app.query_one("#history-table").row_count == 4)
    await until(pilot, lambda: not any(w.is_running for w in pilot.app.workers if w.group == "scan"))
    await settle(pilot, 0.8)


def test_history(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=_history)


def test_compare(snap_compare, runs: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await _history(pilot)
        await pilot.press("space", "space", "c")
        await settle(pilot, 0.2)
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=run_before)


async def _compose_ready(pilot: Any) -> None:
    await until(pilot, lambda: "valid" in str(pilot.app.query_one("#spec-status").render()))
    await settle(pilot, 0.2)


def test_help(snap_compare, runs: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await _compose_ready(pilot)
        await pilot.press("f1")
        await settle(pilot, 0.2)
    assert snap_compare(app_for(runs), terminal_size=SIZE, run_before=run_before)


def test_light_theme_watch(snap_compare, runs: Path) -> None:
    app = make_app(runs_dir=runs, devices=list(DEVICES), theme="textual-light")
    assert snap_compare(app, terminal_size=SIZE, run_before=watch("sample-full", keys=("right_square_bracket",) * 5))


# -- 80×24, the smallest terminal people use: every label readable ----------------------------
SMALL = (80, 24)


def test_small_compose(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=_compose_ready)


def test_small_compose_run_options(snap_compare, runs: Path) -> None:
    """The run options form, with its on/off fields."""
    async def run_before(pilot: Any) -> None:
        await _compose_ready(pilot)
        pilot.app.query_one("#form-run").scroll_visible(animate=False, top=True)
        await settle(pilot, 0.3)
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=run_before)


def test_small_watch_entropy(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=watch("sample-full", keys=("right_square_bracket",) * 5))


def test_small_watch_results(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=watch("sample-full", "tab-results"))


def test_small_history(snap_compare, runs: Path) -> None:
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=_history)


def test_small_quit_dialog(snap_compare, runs: Path) -> None:
    from demtui.tui.dialogs import QuitScreen

    async def run_before(pilot: Any) -> None:
        await _compose_ready(pilot)
        pilot.app.push_screen(QuitScreen(2, 3))
        await settle(pilot, 0.3)
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=run_before)
