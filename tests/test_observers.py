"""Observers end to end: one tiny run with all three trackers, read back with each library's reader.

The run (offline shapes data, a 1-epoch victim, 5 attack iterations, one target) is shared
by the read-back tests; a second run with an observer that raises must give the same
results. W&B runs offline (no key) and is read from its own run file (``run-*.wandb``,
records in W&B's protobuf schema).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from demtui.cli import app

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("wandb")

TINY = ["--set", "dataset.train_size=600", "--set", "dataset.test_size=100", "--set", "victim.epochs=1",
        "--set", "attack.iterations=5", "--set", "run.eval_samples=60", "--set", "run.attack_samples=60",
        "--targets", "1", "--set", "run.noise_baseline=false", "--set", "defense.epochs=1",
        "--set", "defense.refine_epochs=0", "--set", "defense.collapse_check=false"]
CLEAN_ENV = ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY", "DEMTUI_MLFLOW_PARENT_RUN_ID", "DEMTUI_REGISTRY",
             "DEMTUI_STRICT_PLUGINS", "DEMTUI_NO_PLUGINS")

WATCHERS = '''
from demtui.api import ObserverSource, hookimpl

class Raising:
    def __init__(self):
        self.seen = 0
    def on_event(self, event):
        self.seen += 1
        if self.seen == 3:
            raise ValueError("boom")

def make(params, ctx):
    return Raising()

@hookimpl
def demtui_observers():
    return [ObserverSource(name="raising", summary="Raises on the third event.", entry="watchers:make"),
            ObserverSource(name="needy", summary="Needs a tracker nobody installed.", entry="watchers:make",
                           extra="needy", needs=("no_such_tracker_module_xyz",))]
'''


def _invoke(out: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["run", "--headless", "--quiet", "--json", "--device", "cpu", "--out", str(out),
                                    *TINY, *args])


def _clean(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "xdg"))
    if "DEMTUI_CACHE" not in os.environ:
        monkeypatch.setenv("DEMTUI_CACHE", str(base / "cache"))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run with --observer tensorboard --observer mlflow --observer wandb."""
    base = tmp_path_factory.mktemp("observed")
    with pytest.MonkeyPatch.context() as mp:
        _clean(mp, tmp_path_factory.getbasetemp())
        mp.chdir(base)
        out = base / "run"
        res = _invoke(out, "--observer", "tensorboard", "--observer", "mlflow", "--observer", "wandb")
        assert res.exit_code == 0, res.output
    return out


def _summary(run_dir: Path) -> dict[str, Any]:
    summary = json.loads((run_dir / "results.json").read_text())["summary"]
    return {k: v for k, v in summary.items() if not k.endswith("_seconds")}


def test_the_run_finishes_with_no_observer_warning_and_records_them_in_its_spec(tracked: Path) -> None:
    events = [json.loads(line) for line in (tracked / "events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "run_finished"
    assert not [e for e in events if e["type"] == "log" and e["level"] != "info"]
    spec = events[0]["spec"]
    assert spec["run"]["observers"] == ["tensorboard", "mlflow", "wandb"]
    assert spec["observer"]["mlflow"]["experiment"] == "demtui"


def test_tensorboard_holds_the_scalars_histograms_images_and_hparams(tracked: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tracked / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    results = json.loads((tracked / "results.json").read_text())
    before = results["stages"]["attack"]["targets"]["1"]["metrics"]["sr"]
    after = results["stages"]["evaluate"]["targets"]["1"]["sr"]
    assert acc.Scalars("sr/before/target_1")[0].value == pytest.approx(before)
    assert acc.Scalars("sr/after/target_1")[0].value == pytest.approx(after)
    assert acc.Scalars("final/sr_before")[0].value == pytest.approx(results["summary"]["sr_before"])
    assert [s.step for s in acc.Scalars("attack/loss")][-1] == 5  # 5 iterations, one target
    assert "defend/loss" in tags["scalars"]
    clean = acc.Histograms("entropy/deep2/clean")
    assert [h.step for h in clean] == [0, 1]  # before and after the defense
    assert clean[0].histogram_value.num == 60  # one entropy per evaluation image
    assert "uap/uap_attack_1" in tags["images"]
    assert "_hparams_/experiment" in acc.PluginTagToContent("hparams")


def test_mlflow_has_one_finished_run_with_params_metric_history_and_artifacts(tracked: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient((tracked / "mlruns").as_uri())
    exp = client.get_experiment_by_name("demtui")
    [run] = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["attack.name"] == "df-uap" and run.data.params["run.targets"] == "1"
    summary = json.loads((tracked / "results.json").read_text())["summary"]
    assert run.data.metrics["final/cacc_after"] == pytest.approx(summary["cacc_after"])
    history = client.get_metric_history(run.info.run_id, "attack/loss")
    assert [m.step for m in history][-1] == 5
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"artifacts", "results.json", "report.md", "spec.toml"} <= paths
    assert "artifacts/uap_attack_1.safetensors" in {a.path for a in client.list_artifacts(run.info.run_id, "artifacts")}


def _wandb_records(path: Path) -> list[Any]:
    """Records of a W&B run file: LevelDB-log blocks of 32 KiB holding wandb_internal_pb2.Record messages."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (kind == 0 and length == 0):
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk  # FULL/FIRST start a record, MIDDLE/LAST continue it
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
    return out


def test_wandb_ran_offline_and_its_run_file_holds_config_history_and_summary(tracked: Path) -> None:
    [run_file] = (tracked / "wandb").glob("offline-run-*/run-*.wandb")
    records = _wandb_records(run_file)

    def key(item: Any) -> str:
        return item.key or "/".join(item.nested_key)

    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    config = {key(u): json.loads(u.value_json) for u in run.config.update}
    assert config["attack.name"] == "df-uap" and run.display_name == "run"
    history = [{key(i): i.value_json for i in r.history.item} for r in records if r.WhichOneof("record_type") == "history"]
    losses = [h for h in history if "attack/loss" in h]
    assert losses and json.loads(losses[-1]["attack/step"]) == 5
    logged: dict[str, dict[str, Any]] = {}  # a histogram or image is logged as nested keys under its tag
    for r in records:
        if r.WhichOneof("record_type") == "history":
            for i in r.history.item:
                if len(i.nested_key) > 1:
                    logged.setdefault(i.nested_key[0], {})[i.nested_key[1]] = json.loads(i.value_json)
    assert logged["entropy/deep2/clean"]["_type"] == "histogram"
    assert sum(logged["entropy/deep2/clean"]["values"]) == 60  # one entropy per evaluation image
    assert logged["uap/uap_attack_1"]["_type"] == "image-file"
    summary: dict[str, Any] = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({key(u): u.value_json for u in r.summary.update})
    cacc = json.loads((tracked / "results.json").read_text())["summary"]["cacc_before"]
    assert json.loads(summary["final/cacc_before"]) == pytest.approx(cacc)
    assert any(r.WhichOneof("record_type") == "artifact" for r in records)
    assert any(r.WhichOneof("record_type") == "exit" and r.exit.exit_code == 0 for r in records)


def test_an_observer_that_raises_changes_nothing_but_one_warning(tracked: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch, tmp_path)
    (tmp_path / "watchers.py").write_text(WATCHERS)
    (tmp_path / "registry.toml").write_text('[plugins]\nlocal = ["watchers.py"]\n')
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--headless", "--quiet", "--json", "--device", "cpu", "--registry",
                                   str(tmp_path / "registry.toml"), "--out", str(out), *TINY, "--observer", "raising"])
    assert res.exit_code == 0, res.output
    assert _summary(out) == _summary(tracked)  # same spec, same numbers: observers never touch results
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    warnings = [e["message"] for e in events if e["type"] == "log" and e["level"] == "warning"]
    assert warnings == ["Observer 'raising' failed (ValueError: boom) and was detached; the run goes on and its own "
                        "files are complete."]
    assert events[-1]["type"] == "run_finished"


def test_a_missing_extra_is_one_sentence_before_anything_is_written(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch, tmp_path)
    (tmp_path / "watchers.py").write_text(WATCHERS)
    (tmp_path / "registry.toml").write_text('[plugins]\nlocal = ["watchers.py"]\n')
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["run", "--headless", "--quiet", "--device", "cpu", "--registry",
                                   str(tmp_path / "registry.toml"), "--out", str(tmp_path / "run"), "--observer", "needy"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert ("Observer 'needy' needs the 'needy' extra (no_such_tracker_module_xyz is not installed); install it with "
            "'uv sync --extra needy'") in text
    assert not (tmp_path / "run").exists()


def test_unknown_observers_and_bad_params_are_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["run", "--headless", "--quiet", "--device", "cpu", "--out", "x",
                                   "--observer", "tensorbord"])
    assert res.exit_code == 2 and "tensorboard" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["run", "--headless", "--quiet", "--device", "cpu", "--out", "x",
                                   "--observer", "wandb", "--set", "observer.wandb.mode=sometimes"])
    assert res.exit_code == 2 and "online" in res.output and not (tmp_path / "x").exists()


def test_spec_keys_and_tables_enable_observers_and_resume_may_change_them(tmp_path: Path) -> None:
    from demtui import spec as specmod
    from demtui.registry import get_registry

    reg = get_registry()
    data = specmod.merge(specmod.quickstart_dict(), {"run": {"observers": ["tensorboard"]},
                                                     "observer": {"tensorboard": {"flush_secs": 3},
                                                                  "mlflow.experiment": "paper"}})
    data = specmod.with_observers(data, ["mlflow", "tensorboard"])
    spec = specmod.resolve(data, reg)
    assert [(o.name, o.params.get("flush_secs"), o.params.get("experiment")) for o in spec.observers] == [
        ("tensorboard", 3, None), ("mlflow", None, "paper")]
    assert specmod.resolve(specmod.quickstart_dict(), reg).observers == []
    from demtui.engine import check_run_dir
    from demtui.store import RunStore

    store = RunStore(tmp_path / "r")
    store.create()
    (tmp_path / "r" / "spec.toml").write_text(spec.to_toml())
    check_run_dir(store, specmod.resolve(specmod.quickstart_dict(), reg), resume=True)  # observers may differ


def _events(run_id: str) -> list[dict[str, Any]]:
    spec = {"run": {"seed": 0, "targets": [1]}, "attack": {"name": "df-uap"}}
    return [{"type": "run_started", "run": run_id, "time": 1.0, "spec": spec},
            {"type": "progress", "stage": "attack", "done": 3, "total": 5, "info": {"loss": 0.5}, "time": 2.0},
            {"type": "stage_finished", "stage": "attack", "seconds": 1.0, "summary": {}, "time": 3.0},
            {"type": "run_finished", "summary": {"sr_before": 0.9}, "seconds": 3.0, "time": 4.0}]


def test_a_grids_runs_nest_under_one_mlflow_parent_run_in_the_grid_folder(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from demtui.observers import ObserverContext
    from demtui.plugins.observers.mlflow_obs import make

    _clean(monkeypatch, tmp_path)
    grid = tmp_path / "grid"
    grid.mkdir()
    (grid / "sweep.json").write_text("{}")
    params = {"tracking_uri": "", "experiment": "demtui", "nested": True, "log_artifacts": False}
    for label in ("attack.eps=4_255", "attack.eps=8_255"):
        (grid / label).mkdir()
        obs = make(params, ObserverContext(run_dir=grid / label, name="mlflow"))
        for event in _events(label):
            obs.on_event(event)
        obs.close("finished")
    client = MlflowClient((grid / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("demtui").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_name == "grid" and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert sorted(r.info.run_name for r in children) == ["attack.eps=4_255", "attack.eps=8_255"]
    assert all(r.data.metrics["final/sr_before"] == 0.9 for r in children)


def test_mlflow_honours_the_tracking_uri_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from demtui.plugins.observers.mlflow_obs import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri({}, tmp_path / "run", None) == (tmp_path / "run" / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert tracking_uri({}, tmp_path / "run", None) == "http://tracker:5000"
    assert tracking_uri({"tracking_uri": "sqlite:///x.db"}, tmp_path / "run", None) == "sqlite:///x.db"


def test_wandb_goes_online_only_with_a_key_and_honours_wandb_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from demtui.plugins.observers.wandb_obs import choose_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert choose_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert choose_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert choose_mode("auto") == "disabled" and choose_mode("offline") == "offline"


@pytest.mark.slow
def test_a_seed_sweep_nests_its_mlflow_runs_and_reports_mean_and_std(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI: two seeds, one MLflow parent run, and report --format csv over the real runs."""
    import csv
    import io

    from mlflow.tracking import MlflowClient

    _clean(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    grid = tmp_path / "grid"
    tiny = TINY[:TINY.index("defense.epochs=1") - 1]  # the same budget, without the defense's settings
    res = CliRunner().invoke(app, ["run", "--headless", "--quiet", "--json", "--device", "cpu", "--out", str(grid),
                                   *tiny, "--defense", "none", "--sweep", "run.seed=0,1", "--observer", "mlflow"])
    assert res.exit_code == 0, res.output
    client = MlflowClient((grid / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("demtui").experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.run_name == "grid" and sorted(r.data.params["run.seed"] for r in children) == ["0", "1"]
    report = CliRunner().invoke(app, ["report", str(grid), "--format", "csv"])
    assert report.exit_code == 0, report.output
    rows = list(csv.DictReader(io.StringIO(report.output)))
    srs = [json.loads((grid / f"run.seed={s}" / "results.json").read_text())["summary"]["sr_before"] for s in (0, 1)]
    assert rows[0]["Target"] == "all" and rows[0]["Runs"] == "2/2"
    assert float(rows[0]["SR before"]) == pytest.approx(sum(srs) / 2)
    assert float(rows[0]["SR before std"]) == pytest.approx(abs(srs[0] - srs[1]) / 2 ** 0.5)


def test_wandb_reinit_matches_the_installed_version() -> None:
    from demtui.plugins.observers.wandb_obs import _reinit

    assert _reinit("0.31.0") == "create_new" and _reinit("0.16.6") is True and _reinit("1.0.0rc1") == "create_new"
