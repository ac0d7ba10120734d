"""ε sweeps: one run directory per value, a sweep table, validation before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from demtui.cli import app
from demtui.errors import SpecError
from demtui.sweep import parse_sweep_flags, split, variants

TINY = ["--set", "dataset.train_size=600", "--set", "dataset.test_size=100", "--set", "victim.epochs=1",
        "--set", "attack.iterations=5", "--defense", "none", "--set", "run.eval_samples=60",
        "--set", "run.attack_samples=60", "--targets", "1"]


def test_variants_are_the_cartesian_product() -> None:
    base, axes = split({"attack": {"name": "df-uap"}, "sweep": {"attack.eps": ["4/255", "8/255"], "run.seed": [0, 1]}})
    vs = variants(base, axes)
    assert [v.label for v in vs] == ["attack.eps=4_255,run.seed=0", "attack.eps=4_255,run.seed=1",
                                     "attack.eps=8_255,run.seed=0", "attack.eps=8_255,run.seed=1"]
    assert vs[3].data["attack"] == {"name": "df-uap", "eps": "8/255"} and vs[3].data["run"] == {"seed": 1}
    assert parse_sweep_flags(["attack.eps=1/255, 2/255"]) == {"attack.eps": ["1/255", "2/255"]}
    for bad in ({"sweep": {"eps": [1]}}, {"sweep": {"attack.eps": []}}, {"sweep": {"run.name": ["x"]}}):
        with pytest.raises(SpecError):
            split(bad)


def test_a_swept_component_keeps_only_the_base_params_it_accepts() -> None:
    base, axes = split({"defense": {"name": "democratic", "epochs": 3, "steps": 2},
                        "sweep": {"defense.name": ["democratic", "cfn"]}})
    schemas = {"democratic": {"epochs", "steps", "lr"}, "cfn": {"layers", "steps"}}
    vs = variants(base, axes, lambda section, name: schemas.get(name))
    assert vs[0].data["defense"] == {"name": "democratic", "epochs": 3, "steps": 2}
    assert vs[1].data["defense"] == {"name": "cfn", "steps": 2}  # epochs belongs to democratic only


def test_defense_sweep_gives_one_row_per_defense(tmp_path: Path) -> None:
    """The paper's defense tables from one command: a row per defense, same UAPs' metrics."""
    out = tmp_path / "defs"
    tiny = [a for a in TINY if a not in ("--defense", "none")]
    res = CliRunner().invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out),
                                   "--sweep", "defense.name=none,fns", "--set", "defense.layers=conv4,conv6", *tiny])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["sweep"]
    assert [e["values"]["defense.name"] for e in rows] == ["none", "fns"]
    assert rows[0]["summary"]["sr_after"] is None and rows[1]["summary"]["sr_after"] is not None
    assert "| fns | finished |" in (out / "sweep.md").read_text()


def test_eps_sweep_end_to_end_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out),
                              "--sweep", "attack.eps=2/255,16/255", *TINY])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [e["values"]["attack.eps"] for e in doc["sweep"]] == ["2/255", "16/255"]
    assert all(e["status"] == "finished" for e in doc["sweep"])
    small, large = (e["summary"]["sr_before"] for e in doc["sweep"])
    assert large >= small  # a larger budget never makes the same attack weaker here
    assert (out / "sweep.md").read_text().count("\n|") == 4 and (out / "attack.eps=16_255" / "report.md").exists()
    again = runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--out", str(out), "--resume"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["sweep"] == doc["sweep"]


def test_a_bad_value_anywhere_fails_before_any_run(tmp_path: Path) -> None:
    out = tmp_path / "bad"
    res = CliRunner().invoke(app, ["run", "--headless", "--quiet", "--out", str(out), "--sweep", "attack.eps=4/255,3", *TINY])
    assert res.exit_code == 2 and "eps" in res.output
    assert not out.exists()
