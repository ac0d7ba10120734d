"""Reliability: every bad input is one sentence with exit 2, strict JSON, one writer per run,
fixable failed runs, and kill -9 at any stage resumes to the uninterrupted result.

The battery runs in-process (CliRunner) on tiny specs; the victim is the one test_e2e's
tiny runs train (same recipe, shared cache), so only the kill -9 test pays for processes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from demtui.cli import app
from demtui.jsonsafe import dumps, loads_strict

runner = CliRunner(env={"COLUMNS": "1000"})  # no wrapping inside paths

#: The tiny run of test_e2e (same victim key, so the shared cache trains it once).
TINY = ["--set", "dataset.train_size=1000", "--set", "dataset.test_size=200", "--set", "victim.epochs=1",
        "--set", "attack.iterations=10", "--set", "defense.epochs=1", "--set", "defense.refine_epochs=0",
        "--set", "run.eval_samples=100", "--set", "run.attack_samples=100", "--targets", "1,2"]
RUN = ["run", "--headless", "--quiet", "--device", "cpu"]


def _refused(args: list[str], *needles: str, code: int = 2) -> str:
    """Exit ``code`` with one error sentence: no traceback, no 'internal error', no warning spill."""
    res = runner.invoke(app, args)
    out = res.output
    assert res.exit_code == code, (res.exit_code, out)
    assert "Traceback" not in out and "internal error" not in out and "Warning" not in out, out
    assert out.count("error:") == 1, out
    flat = " ".join(out.split())
    for needle in needles:
        assert needle in flat, flat
    return flat


# -- the battery: bad input that needs no data ---------------------------------------------------
def test_out_that_is_a_file_or_cannot_be_created(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    _refused([*RUN, "--out", str(afile)], "is a file", "--out")
    _refused([*RUN, "--out", str(afile / "sub")], "under a file", "--out")
    _refused([*RUN, "--out", "/proc/demtui-cannot/run"], "Cannot write", "--out")


def test_spec_files_that_cannot_be_read(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[run]\nseed = 1 # caf\xe9\n")
    _refused(["run", "--spec", str(latin)], "not UTF-8")
    _refused(["run", "--spec", str(tmp_path)], "is a directory")
    _refused(["run", "--spec", str(tmp_path / "missing.toml")], "does not exist")
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\nseed = 1")
    _refused(["run", "--spec", str(broken)], "not valid TOML")


def test_bracketed_words_survive_in_messages(tmp_path: Path) -> None:
    """Rich markup must not eat '[foo]': the section name is in the sentence."""
    spec = tmp_path / "foo.toml"
    spec.write_text("[foo]\nx = 1\n")
    _refused(["run", "--spec", str(spec)], "'[foo]'")
    _refused([*RUN, "--set", "atack.eps=0.1"], "'[atack]'", "Did you mean 'attack'?")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_non_finite_numbers_are_refused_at_validation(value: str, tmp_path: Path) -> None:
    _refused([*RUN, "--out", str(tmp_path / "r"), "--set", f"defense.lr={value}"], "finite")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("args", "needles"), [
    (["--attack", "df-uaq"], ["df-uap"]),
    (["--defense", "democratik"], ["democratic"]),
    (["--model", "smalcnn"], ["smallcnn"]),
    (["--model", "torchvision:resnet5000"], ["resnet50"]),
    (["--dataset", "shape"], ["shapes"]),
    (["--set", "attack.eps=2"], ["eps"]),
    (["--set", "attack.iterations=ten"], ["whole number"]),
    (["--set", "run.bins=1"], ["bins"]),
    (["--set", "run.mode=sideways"], ["targeted"]),
    (["--set", "victim.lr=0"], ["lr"]),
    (["--set", "attack"], ["section.param=value"]),
    (["--targets", "99"], ["Target class 99", "0–9"]),
    (["--targets", "hexagon"], ["hexagon"]),
    (["--targets", "circel"], ["circle"]),
    (["--layer", "deep9"], ["deep9"]),
    (["--layer", "conv9"], ["conv9"]),
    (["--device", "gpu7"], ["gpu7"]),
    (["--set", "model.checkpoint=/nowhere/w.safetensors"], ["does not exist"]),
    (["--dataset", "imagefolder"], ["dataset.root"]),
    (["--dataset", "imagefolder", "--set", "dataset.root=/nowhere"], ["/nowhere", "does not exist"]),
    (["--rerun", "attack"], ["--out"]),
])
def test_bad_input_is_refused_before_any_work(args: list[str], needles: list[str], tmp_path: Path) -> None:
    """Each of these costs seconds: no data is loaded, no victim trained, no run directory written."""
    out = tmp_path / "run"
    _refused([*RUN, "--out", str(out), *args] if "--rerun" not in args else [*RUN, *args], *needles)
    assert not out.exists()


def test_imagefolder_with_one_class_is_refused_before_loading(tmp_path: Path) -> None:
    (tmp_path / "data" / "only").mkdir(parents=True)
    _refused([*RUN, "--out", str(tmp_path / "r"), "--dataset", "imagefolder", "--set",
              f"dataset.root={tmp_path / 'data'}"], "at least two")


def test_resume_needs_an_existing_run(tmp_path: Path) -> None:
    _refused([*RUN, "--resume", "--out", str(tmp_path / "typo")], "does not exist", "drop --resume")
    assert not (tmp_path / "typo").exists()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("x")
    _refused([*RUN, "--resume", "--out", str(tmp_path / "photos")], "not a demtui run")
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["cat.jpg"]
    _refused([*RUN, "--resume"], "--out")


def test_registry_defaults_are_checked_wherever_used(tmp_path: Path) -> None:
    bad = tmp_path / "registry.toml"
    bad.write_text("[defaults.attack.df-uap]\neps = 2\n")
    for args in ([*RUN, "--out", str(tmp_path / "r")], ["show", "df-uap"], ["list"]):
        _refused([*args, "--registry", str(bad)], "[defaults.attack.df-uap]", "eps", str(bad))
    typo = tmp_path / "typo.toml"
    typo.write_text("[defaults.attack.df-uapp]\neps = 0.1\n")
    _refused(["show", "df-uap", "--registry", str(typo)], "df-uapp", "Did you mean 'df-uap'?")
    assert runner.invoke(app, ["plugins", "--registry", str(bad)]).exit_code == 0  # plugins reports, not refuses


def test_show_prints_budgets_on_the_pixel_grid_and_other_floats_as_floats(in_tmp: Path) -> None:
    folder = " ".join(runner.invoke(app, ["show", "imagefolder"]).output.split())
    assert "0.2" in folder and "51/255" not in folder
    assert "10/255" in runner.invoke(app, ["show", "df-uap"]).output


def test_raw_pickle_checkpoint_is_one_sentence_without_torch_warnings(tmp_path: Path) -> None:
    import pickle

    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"w": {1, 2}}, protocol=4))
    _refused([*RUN, "--out", str(tmp_path / "r"), "--set", f"model.checkpoint={raw}", *TINY], "raw.pt")


# -- bad input found only with data -----------------------------------------------------------------
def _image_folder(root: Path, bad: bool) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    if bad:
        (root / "a" / "broken.jpg").write_bytes(b"not an image")
    return root


FOLDER = ["--dataset", "imagefolder", "--set", "dataset.image_size=16", "--set", "victim.epochs=1",
          "--set", "attack.iterations=2", "--set", "defense.epochs=1", "--set", "defense.refine_epochs=0",
          "--targets", "0", "--set", "run.secondary=false"]


def test_undecodable_image_is_exit_2_and_the_fixed_run_reuses_its_out(tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "data", bad=True)
    out = tmp_path / "run"
    args = [*RUN, "--out", str(out), *FOLDER, "--set", f"dataset.root={data}"]
    _refused(args, "broken.jpg", "cannot be decoded")
    (data / "a" / "broken.jpg").unlink()
    # No stage had finished, so the same command on the same --out now just runs.
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    assert loads_strict(res.stdout)["status"] == "finished"


# -- one writer per run directory ----------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    from demtui.lock import DirLock, holder_if_locked

    out = tmp_path / "run"
    with DirLock(out):
        _refused([*RUN, "--out", str(out), *TINY], "is being written by process", str(os.getpid()))
        _refused([*RUN, "--out", str(out), "--resume", *TINY], "is being written by process")
        assert holder_if_locked(out) is not None  # what the TUI asks before it offers resume
    assert holder_if_locked(out) is None


def test_a_background_executor_respects_the_lock(tmp_path: Path) -> None:
    """The local executor's worker runs the engine, which takes the lock: a held directory is exit 2."""
    from demtui.lock import DirLock

    out = tmp_path / "run"
    with DirLock(out):
        _refused([*RUN, "--executor", "local", "--out", str(out), *TINY], "is being written by process")


def test_a_dead_writers_lock_is_taken_over_with_a_message(tmp_path: Path) -> None:
    from demtui.lock import LOCK_FILE
    from demtui.procs import this_host

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": this_host(), "started": None,
                                             "since": time.time(), "heartbeat": time.time(), "command": "x"}))
    res = runner.invoke(app, [*RUN, "--out", str(out), "--json", *TINY])
    assert res.exit_code == 0, res.output
    logs = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any("took over the lock" in e.get("message", "").lower() for e in logs if e["type"] == "log")


# -- fixable runs: resume with changes, --rerun ------------------------------------------------------
def _summary(doc: dict) -> dict:
    return {k: v for k, v in doc["summary"].items() if not k.endswith("_seconds")}


def test_resume_accepts_changes_to_unfinished_stages_and_rerun_redoes_a_stage(tmp_path: Path) -> None:
    from demtui import stages

    out = tmp_path / "run"
    real = stages.defend
    stages.defend = lambda state: (_ for _ in ()).throw(KeyboardInterrupt())
    try:
        cut = runner.invoke(app, [*RUN, "--out", str(out), *TINY])
    finally:
        stages.defend = real
    assert cut.exit_code == 130, cut.output
    baseline_seconds = json.loads((out / "results.json").read_text())["stages"]["baseline"]["seconds"]
    # The defense never finished: a new defense value is accepted and said.
    res = runner.invoke(app, [*RUN, "--out", str(out), "--resume", "--json", *TINY, "--set", "defense.lr=0.004"])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any("defense.lr" in e.get("message", "") for e in events if e["type"] == "log")
    assert "lr = 0.004" in (out / "spec.toml").read_text()
    # The attack finished: changing it is refused with advice that works …
    msg = _refused([*RUN, "--out", str(out), "--resume", *TINY, "--set", "defense.lr=0.004",
                    "--set", "attack.iterations=11"], "attack.iterations", "--rerun attack")
    assert "--rerun attack" in msg
    # … and following it redoes attack and what follows, keeping the baseline.
    res = runner.invoke(app, [*RUN, "--out", str(out), "--rerun", "attack", "--json", *TINY,
                              "--set", "defense.lr=0.004", "--set", "attack.iterations=11"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["stages"]["baseline"]["seconds"] == baseline_seconds
    assert set(results["stages"]) >= {"attack", "analyse", "defend", "evaluate"}
    _refused([*RUN, "--out", str(out), "--rerun", "atack"], "Did you mean 'attack'?")


def test_train_prints_its_training_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "victim.safetensors"
    res = runner.invoke(app, ["train", "--model", "smallcnn", "--dataset", "shapes", "--out", str(out),
                              "--set", "dataset.train_size=200", "--set", "dataset.test_size=50",
                              "--set", "victim.epochs=1", "--set", "model.width=4"])
    assert res.exit_code == 0, res.output
    doc = loads_strict(res.stdout[res.stdout.index("{"):])
    assert 0 <= doc["train_acc"] <= 1 and doc["train_loss"] > 0
    assert "null" not in res.stdout


# -- strict JSON and file modes ---------------------------------------------------------------------
def test_non_finite_values_are_written_as_null_with_a_flag() -> None:
    doc = loads_strict(dumps({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}, "e": 2.5}))
    assert doc == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": 2.5, "nonfinite": ["a", "b[1]", "c.d"]}
    assert "nonfinite" not in loads_strict(dumps({"a": 1.0, "nonfinite": ["stale"]}))
    with pytest.raises(ValueError):
        loads_strict('{"a": NaN}')


def test_events_writer_never_writes_nan(tmp_path: Path) -> None:
    from demtui.events import EventBus, JsonlWriter

    writer = JsonlWriter(tmp_path / "events.jsonl")
    bus = EventBus(run_id="r")
    bus.subscribe(writer)
    bus.emit("metric", stage="defend", name="loss", step=1, value=float("nan"))
    writer.close()
    event = loads_strict((tmp_path / "events.jsonl").read_text())
    assert event["value"] is None and event["nonfinite"] == ["value"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One uninterrupted tiny run (under umask 022), shared by the tests below."""
    from demtui import store

    out = tmp_path_factory.mktemp("reference") / "run"
    old = os.umask(0o022)
    store._umask.cache_clear()
    try:
        res = runner.invoke(app, [*RUN, "--out", str(out), "--json", *TINY])
    finally:
        os.umask(old)
        store._umask.cache_clear()
    assert res.exit_code == 0, res.output
    return out, loads_strict(res.stdout)  # --json output is strict JSON too


def test_every_json_file_of_a_run_parses_strictly_and_modes_follow_the_umask(reference) -> None:
    out, _ = reference
    for path in out.rglob("*.json"):
        loads_strict(path.read_text())
    for line in (out / "events.jsonl").read_text().splitlines():
        loads_strict(line)
    for path in [p for p in out.rglob("*") if p.is_file() and p.name != "run.lock"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# -- kill -9 at several stages ------------------------------------------------------------------------
def _wait_for(events: Path, stage: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until the run has made progress inside ``stage`` (or started it)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if events.exists():
            for line in events.read_text().splitlines():
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("stage") == stage and e["type"] in ("progress", "stage_finished"):
                    return
        time.sleep(0.05)
    raise AssertionError(f"the run never reached {stage} (exit {proc.poll()})")


@pytest.mark.parametrize("stage", ["attack", "defend"])
def test_kill_9_then_resume_equals_an_uninterrupted_run(stage: str, reference, tmp_path: Path) -> None:
    out = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "demtui", *RUN, "--out", str(out), *TINY], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(out / "events.jsonl", stage, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    res = runner.invoke(app, [*RUN, "--out", str(out), "--resume", "--json", *TINY])
    assert res.exit_code == 0, res.output
    skipped = [json.loads(line).get("stage") for line in (out / "events.jsonl").read_text().splitlines()
               if '"stage_skipped"' in line]
    assert "baseline" in skipped  # killed after the baseline finished, so the resume built on it
    assert _summary(loads_strict(res.stdout)) == _summary(reference[1])


def test_a_safetensors_checkpoint_that_does_not_fit_is_refused_before_any_work(tmp_path: Path) -> None:
    from demtui.plugins.models.builders import save_checkpoint
    from demtui.plugins.models.small_cnn import SmallCNN

    ckpt = tmp_path / "narrow.safetensors"
    save_checkpoint(SmallCNN(num_classes=10, width=8), ckpt)  # the quickstart builds another width
    _refused([*RUN, "--out", str(tmp_path / "r"), "--set", f"model.checkpoint={ckpt}"], "does not fit")
    assert not (tmp_path / "r").exists()
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o666 & ~_umask_now()


def _umask_now() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# -- the TUI: literal messages, and the lock decides whether a run can be resumed ---------------------
def test_tui_shows_messages_literally_and_asks_the_lock_before_resuming(tmp_path: Path) -> None:
    import asyncio

    from demtui.devices import Device
    from demtui.lock import DirLock
    from demtui.tui.app import make_app
    from demtui.tui.sample import write_sample_run

    runs = tmp_path / "runs"
    write_sample_run(runs / "cut", stop_after="analyse")

    async def drive() -> None:
        app = make_app(runs_dir=runs, devices=[Device("auto", "auto"), Device("cpu", "CPU")])
        async with app.run_test(size=(100, 30)) as pilot:
            key = app.open_run(runs / "cut")
            await pilot.pause(0.2)
            with DirLock(runs / "cut"):
                app.resume_run(key)
                await pilot.pause(0.1)
            assert key not in app.handles  # nothing launched into a directory someone writes
            app.query_one("#run-problem").notify("Unknown spec section '[foo]'.")  # a widget's notify too
            await pilot.pause(0.1)
            notes = list(app._notifications)
            assert any("is being written by process" in n.message for n in notes)
            assert any("[foo]" in n.message for n in notes) and not any(n.markup for n in notes)

    asyncio.run(drive())
