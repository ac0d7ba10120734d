"""The TUI kept open all day (issue 15): many runs, dead runs, fast typing, live validation,
an 80×24 terminal, and the smaller things a user trips over. Pilot-driven, no real runs."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from textual import events
from textual.widgets import Input, Select

from demtui.devices import Device
from demtui.tui.app import make_app
from demtui.tui.compose_pane import ComposePane
from demtui.tui.forms import ParamForm
from demtui.tui.foreign import this_host
from demtui.tui.history_pane import HistoryPane
from demtui.tui.runinfo import read_run_info
from demtui.tui.sample import write_sample_run

DEVICES = [Device("auto", "auto"), Device("cpu", "CPU")]


def sync(test: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))
    return run


async def wait_for(pilot: Any, cond: Callable[[], Any], timeout: float = 30.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what or cond}")


def dead_pid() -> int:
    """The pid of a process that has already ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@sync
async def test_forty_runs_are_all_watched_by_one_thread(tmp_path: Path) -> None:
    """More runs than Textual's thread pool has workers (min(32, CPUs+4)): every one loads,
    History still rescans, and following them costs one thread, not one per run."""
    runs = [write_sample_run(tmp_path / "runs" / f"r{i:02d}", stop_after="analyse") for i in range(40)]
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        threads = threading.active_count()
        keys = [app.open_run(r) for r in runs]
        await wait_for(pilot, lambda: all(app.views[k].status == "running" and app.views[k].stages.get("defend")
                                          for k in keys), 30, "all 40 runs loaded")
        assert threading.active_count() <= threads + 1
        (tmp_path / "runs" / "r00").rename(tmp_path / "runs" / "zz-renamed")
        await pilot.press("f4")
        history = app.query_one(HistoryPane)
        await wait_for(pilot, lambda: any(i.name == "zz-renamed" for i in history.infos), 10, "rescan")


@sync
async def test_a_run_whose_process_died_shows_died_not_running(tmp_path: Path) -> None:
    gone = dead_pid()
    dead = write_sample_run(tmp_path / "runs" / "dead", stop_after="attack", pid=gone, host=this_host())
    elsewhere = write_sample_run(tmp_path / "runs" / "elsewhere", stop_after="attack", pid=gone, host="another-host")
    info = read_run_info(dead)
    assert info.status == "died" and "resume" in info.problem
    assert read_run_info(elsewhere).status == "running?"  # another host: cannot tell from here
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.query("#watch-pane") and app.query("#history-pane"), 10, "panes mounted")
        key = app.open_run(dead)
        other = app.open_run(elsewhere)
        await wait_for(pilot, lambda: app.status_of(key)[0] == "died", 10, "died")
        app.select_run(key)
        await wait_for(pilot, lambda: "gone without a final event" in str(app.query_one("#run-problem").render()), 5)
        assert app.views[key].stages["analyse"].status == "died"
        assert app.status_of(other)[0] == "running"


@sync
async def test_typing_right_after_loading_a_spec_loses_no_key(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('[run]\ntargets = [1]\n[attack]\nname = "df-uap"\niterations = 10\n[defense]\nname = "none"\n')
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(ComposePane)
        await wait_for(pilot, lambda: len(pane.query(ParamForm)) == 6, 10, "forms")
        await pilot.press("ctrl+o", *str(spec))
        name = pane.query_one("#run-name", Input)
        region = name.region
        # Enter, then at once a click on Name and fast typing: all queued before any is handled
        app.post_message(events.Key("enter", "\r"))
        await pilot.click(offset=(region.x + 2, region.y))
        for ch in "trial1-abcdef":
            app.post_message(events.Key("minus" if ch == "-" else ch, ch))
        await wait_for(pilot, lambda: pane.query_one("#form-attack", ParamForm).raw("iterations") == "10", 10)
        await pilot.pause(0.3)
        assert pane.query_one("#run-name", Input).value == "trial1-abcdef"
        assert app.focused is pane.query_one("#run-name", Input)


@sync
async def test_open_prompt_keeps_its_default_and_completes_paths(tmp_path: Path) -> None:
    write_sample_run(tmp_path / "runs" / "sample-one")
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.query("#run-list"), 10, "Watch mounted")
        await pilot.press("f3", "o")
        field = app.query_one("#prompt-input", Input)
        assert app.focused is field and field.value == str(tmp_path / "runs") + "/"
        await pilot.press("s", "a", "tab")  # typing adds to the default (it is not pre-selected)
        assert field.value == str(tmp_path / "runs" / "sample-one") + "/"
        await pilot.press("enter")
        key = str((tmp_path / "runs" / "sample-one").resolve())
        await wait_for(pilot, lambda: key in app.views and app.views[key].status == "finished", 10, "opened")
        assert not app.query_one("#prompt-bar").display


@sync
async def test_no_bogus_error_while_the_form_loads(tmp_path: Path) -> None:
    """Ctrl+N pressed again and again during start-up: the status line never blames a field."""
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    seen: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(ComposePane)
        for _ in range(12):
            await pilot.press("ctrl+n")
            seen.append(str(app.query_one("#spec-status").render()))
            await pilot.pause(0.02)
        await wait_for(pilot, lambda: "✓ valid" in str(app.query_one("#spec-status").render()), 15, "valid")
        seen.append(str(app.query_one("#spec-status").render()))
        assert len(pane.query(ParamForm)) == 6
    assert not [s for s in seen if "✗" in s], seen


@sync
async def test_targets_and_run_names_are_checked_as_they_are_typed(tmp_path: Path) -> None:
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "events.jsonl").write_text("")
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(ComposePane)
        await wait_for(pilot, lambda: "✓ valid" in str(app.query_one("#spec-status").render()), 15, "valid")
        status = lambda: str(app.query_one("#spec-status").render())  # noqa: E731
        cases = {"0,3,99x": "Target '99x' is not a class of dataset 'shapes'",
                 "0,3,10": "Target 10 is not a class of dataset 'shapes'; use an index from 0 to 9",
                 "squar": "Did you mean 'square'?"}
        targets = pane.query_one("#run-targets", Input)
        for typed, expected in cases.items():
            targets.value = typed
            await wait_for(pilot, lambda: expected in status(), 5, expected)
            assert targets.has_class("-bad")
        targets.value = "0,square,9"
        await wait_for(pilot, lambda: "✓ valid" in status(), 5, "names and indices accepted")
        name = pane.query_one("#run-name", Input)
        for typed, expected in {"../escape": "plain folder name", "a/b": "plain folder name",
                                "taken": "already exists"}.items():
            name.value = typed
            await wait_for(pilot, lambda: expected in status(), 5, expected)
            assert name.has_class("-bad")
            await pilot.press("ctrl+r")
            assert not app.views  # refused before anything is launched
        name.value = "fine-name"
        await wait_for(pilot, lambda: "✓ valid" in status(), 5)


def test_shapes_metadata_lists_the_generator_s_classes() -> None:
    from demtui.plugins.datasets import SHAPES
    from demtui.plugins.datasets.shapes_gen import SHAPE_CLASSES

    assert SHAPES == SHAPE_CLASSES


SLEEP = [sys.executable, "-c", "import time; time.sleep(60)  # demtui run"]


async def _launch(pilot: Any, app: Any, name: str) -> None:
    pane = app.query_one(ComposePane)
    await pilot.press("f2")
    await wait_for(pilot, lambda: len(pane.query(ParamForm)) == 6, 15, "forms")
    pane.query_one("#run-device", Select).value = "cpu"
    pane.query_one("#run-name", Input).value = name
    await wait_for(pilot, lambda: "✓ valid" in str(app.query_one("#spec-status").render()), 10, "valid")
    await pilot.press("ctrl+r")


@sync
async def test_queued_runs_survive_quitting_and_live_runs_are_picked_up(tmp_path: Path) -> None:
    from demtui.executors.local import LocalProcessExecutor

    runs = tmp_path / "runs"
    first = LocalProcessExecutor(command=lambda *a: SLEEP)
    app = make_app(runs_dir=runs, devices=list(DEVICES), executor=first)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await _launch(pilot, app, "one")
            await _launch(pilot, app, "two")  # same device: waits in the queue
            assert [h.status for h in first.handles] == ["running", "queued"]
            await pilot.press("ctrl+q")
            assert "1 queued" in str(app.screen.query_one("#quit-count").render())
            await pilot.press("k")
        assert (runs / ".demtui-queue.json").exists()
        # a live run from another terminal: its run_started names a live demtui process on this host
        other = subprocess.Popen(SLEEP)
        write_sample_run(runs / "live-elsewhere", stop_after="attack", pid=other.pid, host=this_host())
        second = LocalProcessExecutor(command=lambda *a: SLEEP)
        app2 = make_app(runs_dir=runs, devices=list(DEVICES), executor=second)
        async with app2.run_test(size=(80, 24)) as pilot:
            key = str((runs / "two").resolve())
            await wait_for(pilot, lambda: key in app2.handles, 10, "the queue restored")
            assert [h.run_dir.name for h in second.handles] == ["two"]
            live = str((runs / "live-elsewhere").resolve())
            await wait_for(pilot, lambda: live in app2.views, 10, "the live run adopted")
            assert str((runs / "one").resolve()) not in app2.views  # launched here before: no pid in events
        assert not (runs / ".demtui-queue.json").exists()
        second.shutdown(cancel=True)
        other.kill()
    finally:
        for h in first.handles:
            if h._job is not None and h._job.poll() is None:
                h._job.kill()


@sync
async def test_loss_tab_follows_the_running_stage_and_inner_tabs_have_keys(tmp_path: Path) -> None:
    import json

    run = write_sample_run(tmp_path / "runs" / "live", stop_after="baseline")  # attack is running
    app = make_app(runs_dir=tmp_path / "runs", devices=list(DEVICES))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.query("#watch-pane") and app.query("#history-pane"), 10, "panes mounted")
        key = app.open_run(run)
        watch = app.query_one("#watch-pane")
        await wait_for(pilot, lambda: app.views[key].losses.get("attack"), 10, "attack losses")
        await pilot.press("p")
        assert app.query_one("#watch-tabs").active == "tab-loss"
        await wait_for(pilot, lambda: watch.loss_stage == "attack", 5, "attack curve")
        with open(run / "events.jsonl", "a") as fh:  # the run moves on to the defense
            for seq, event in enumerate([{"type": "stage_finished", "stage": "attack", "seconds": 1.0},
                                         {"type": "stage_started", "stage": "defend"},
                                         {"type": "progress", "stage": "defend", "done": 1, "total": 9,
                                          "info": {"loss": 0.5}}]):
                fh.write(json.dumps({"v": 1, "seq": 900 + seq, "time": 1.8e9 + seq, "run": "x", **event}) + "\n")
        await wait_for(pilot, lambda: watch.loss_stage == "defend", 10, "the defend curve")
        for key_, tab in (("h", "tab-entropy"), ("s", "tab-results"), ("g", "tab-log"), ("p", "tab-loss")):
            await pilot.press(key_)
            assert app.query_one("#watch-tabs").active == tab


def test_csv_export_writes_numbers_and_compare_shows_parameter_differences(tmp_path: Path) -> None:
    import csv

    from demtui.tui.runinfo import compare_table, export_compare

    a = read_run_info(write_sample_run(tmp_path / "a"))
    b = read_run_info(write_sample_run(tmp_path / "b", strength=0.3, attack="fgsm-uap"))
    b.spec["attack"]["iterations"] = 50
    header, rows = compare_table([a, b])
    assert ["attack.iterations", "200", "50"] in rows
    md, cs = export_compare([a, b], tmp_path, "out")
    table = {r[0]: r[1:] for r in csv.reader(cs.open())}
    assert float(table["SR before"][0]) == a.summary["sr_before"]  # full precision, a number
    assert table["ΔCAcc"] == [str(a.summary["delta_cacc"]), str(b.summary["delta_cacc"])]
    assert table["attack.iterations"] == ["200", "50"]
    assert "—" not in cs.read_text()


def test_histograms_share_one_x_range() -> None:
    from demtui.tui.plots import axis_line, rebin

    # 4 bins on [0, 4] moved onto 4 bins over [0, 8]: bin centres 0.5,1.5,2.5,3.5 → bins 0,0,1,1
    assert rebin((1, 2, 3, 4), 0.0, 4.0, 0.0, 8.0, 4) == (3, 7, 0, 0)
    assert rebin((1, 2), 0.0, 1.0, 0.0, 1.0, 2) == (1, 2)
    assert axis_line(8.4, 10.2, 40, 40).startswith("8.4") and axis_line(8.4, 10.2, 40, 40).endswith("10.2")
    assert axis_line(8.4, 10.2, 12, 12).endswith("10.2")  # the end label is never cut


@sync
async def test_filter_sort_zoom_report_uaps_and_copy_command(tmp_path: Path) -> None:
    from PIL import Image

    from demtui.tui.extras import PickerScreen, ReportScreen, UapScreen

    runs = tmp_path / "runs"
    full = write_sample_run(runs / "sample-full")
    write_sample_run(runs / "sample-weak", strength=0.3, attack="fgsm-uap")
    write_sample_run(runs / "other-live", stop_after="analyse")
    (full / "report.md").write_text("# demtui report\n\n| Metric | Before | After |\n|---|---|---|\n| SR | 0.9 | 0.02 |\n")
    (full / "artifacts").mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(full / "artifacts" / "uap_attack_1.png")
    app = make_app(runs_dir=runs, devices=list(DEVICES))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f4")
        history = app.query_one(HistoryPane)
        await wait_for(pilot, lambda: len(history.infos) == 3, 10, "scan")
        await pilot.press("slash", *"fgsm")
        assert [i.name for i in history.infos] == ["sample-weak"]
        await pilot.press("enter", "slash", "ctrl+u", "enter")  # clear the filter (ctrl+u empties the field)
        await wait_for(pilot, lambda: len(history.infos) == 3, 5, "unfiltered")
        await pilot.press("s")  # sort by SR after: the live run (no SR after yet) first, ascending
        assert history.infos[0].name == "other-live"
        await pilot.press("z")
        assert app.screen.maximized is app.query_one("#history-table")
        await pilot.press("z")
        assert app.screen.maximized is None
        history.query_one("#history-table").move_cursor(row=[i.name for i in history.infos].index("sample-full"))
        await pilot.press("m")
        assert isinstance(app.screen, ReportScreen)
        await pilot.press("escape", "u")
        assert isinstance(app.screen, UapScreen)
        assert "▀" in str(app.screen.query_one("#uap-image").render())
        await pilot.press("escape", "y")
        await wait_for(pilot, lambda: any("demtui run --headless" in n.message for n in app._notifications), 5)
        command = [n.message for n in app._notifications if "demtui run" in n.message][-1]
        assert "--model smallcnn" in command and "--attack df-uap" in command and f"--out {full}" in command
        # Watch: / filters the run list
        for name in ("sample-full", "sample-weak"):
            app.open_run(runs / name)
        await pilot.pause(0.3)
        await pilot.press("f3", "slash", *"weak", "enter")
        await pilot.pause(0.3)
        assert [o.id for o in app.query_one("#run-list").options] == [str((runs / "sample-weak").resolve())]
        # the picker: Ctrl+O, Ctrl+B, choose a file
        spec = tmp_path / "picked.toml"
        spec.write_text('[attack]\nname = "df-uap"\n')
        await pilot.press("f2", "ctrl+o", *str(tmp_path) + "/", "ctrl+b")
        assert isinstance(app.screen, PickerScreen)
        app.screen.dismiss(str(spec))
        await pilot.pause(0.2)
        assert app.query_one("#prompt-input", Input).value == str(spec)


def test_cli_command_names_only_what_differs_from_the_defaults() -> None:
    from demtui.tui.extras import cli_command

    spec = {"run": {"targets": [1, 2], "device": "cpu", "eval_samples": 100, "seed": 0},
            "model": {"name": "smallcnn", "width": 16}, "dataset": {"name": "shapes"},
            "attack": {"name": "df-uap", "iterations": 10}, "defense": {"name": "none"}, "victim": {"epochs": 5}}
    defaults = {"run": {"eval_samples": 1000, "seed": 0}, "model": {"width": 16}, "attack": {"iterations": 200},
                "victim": {"epochs": 5}}
    assert cli_command(spec, Path("runs/x"), defaults) == (
        "demtui run --headless --model smallcnn --dataset shapes --attack df-uap --defense none "
        "--targets 1,2 --device cpu --set run.eval_samples=100 --set attack.iterations=10 --out runs/x")
