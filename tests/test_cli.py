"""Bad input at the command line: one clear sentence, a non-zero exit, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from demtui.cli import app

runner = CliRunner()


def _fails(args: list[str], *needles: str, code: int = 2) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in res.output, res.output
    return res.output


@pytest.mark.parametrize(("args", "needles"), [
    (["--attack", "df-uaq"], ["df-uap"]),
    (["--defense", "democratik"], ["democratic"]),
    (["--model", "smalcnn"], ["smallcnn"]),
    (["--dataset", "shape"], ["shapes"]),
    (["--set", "attack.eps=2"], ["eps"]),
    (["--set", "attack.eps=0"], ["eps"]),
    (["--set", "attack.itrations=5"], ["iterations"]),
    (["--set", "defense.steps=-1"], ["steps"]),
    (["--targets", ""], ["target"]),
    (["--targets", "99"], ["99"]),
    (["--targets", "hexagon"], ["hexagon"]),
    (["--device", "gpu7"], ["gpu7"]),
    (["--layer", "deep9"], ["deep9"]),
])
def test_bad_run_input_is_one_sentence(args: list[str], needles: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    _fails(["run", "--headless", "--quiet", "--out", str(out), "--set", "dataset.train_size=200",
            "--set", "victim.epochs=1", *args], *needles)


def test_bad_input_known_without_data_is_refused_before_any_stage(tmp_path: Path) -> None:
    """Targets are checked against the dataset's class list before prepare: no stage, no run directory."""
    out = _fails(["run", "--headless", "--out", str(tmp_path / "run"), "--set", "dataset.train_size=200",
                  "--set", "victim.epochs=1", "--targets", "99"], "Target class 99")
    assert out.count("does not exist") == 1, out
    assert "Stopped in stage" not in out and not (tmp_path / "run").exists()


def test_a_stage_that_fails_on_bad_input_says_it_once(tmp_path: Path) -> None:
    """The progress view names the stage; the sentence itself is printed by the CLI alone."""
    import torch

    from demtui.plugins.models.small_cnn import SmallCNN

    ckpt = tmp_path / "other.pt"  # a .pt has no header to check before prepare loads it
    torch.save(SmallCNN(num_classes=10, width=8).state_dict(), ckpt)
    out = _fails(["run", "--headless", "--out", str(tmp_path / "run"), "--set", "dataset.train_size=200",
                  "--set", f"model.checkpoint={ckpt}"], "does not fit")
    assert out.count("does not fit") == 1, out
    assert "Stopped in stage prepare" in out


def test_missing_dataset_root_and_missing_spec(tmp_path: Path) -> None:
    _fails(["run", "--headless", "--quiet", "--out", str(tmp_path / "a"), "--dataset", "imagefolder",
            "--set", f"dataset.root={tmp_path / 'nowhere'}"], "nowhere")
    _fails(["run", "--headless", "--spec", str(tmp_path / "missing.toml")], "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nseed = 1")
    _fails(["run", "--headless", "--spec", str(bad)], "bad.toml")


def test_checkpoint_that_does_not_fit(tmp_path: Path) -> None:
    import torch

    from demtui.plugins.models.builders import save_checkpoint
    from demtui.plugins.models.small_cnn import SmallCNN

    ckpt = tmp_path / "other.safetensors"
    save_checkpoint(SmallCNN(num_classes=10, width=8), ckpt)  # the quickstart builds width 16
    _fails(["run", "--headless", "--quiet", "--out", str(tmp_path / "r"), "--set", f"model.checkpoint={ckpt}",
            "--set", "dataset.train_size=200"], "does not fit")
    _fails(["run", "--headless", "--quiet", "--out", str(tmp_path / "r2"),
            "--set", f"model.checkpoint={tmp_path / 'absent.pt'}", "--set", "dataset.train_size=200"], "absent.pt")
    assert torch.__version__  # torch imported only here, after the CLI checks


def test_discovery_commands(in_tmp: Path) -> None:
    res = runner.invoke(app, ["list", "attacks"])
    assert res.exit_code == 0 and "df-uap" in res.output
    res = runner.invoke(app, ["show", "democratic"])
    assert res.exit_code == 0 and "refine_lr" in res.output and "bn_mode" in res.output
    _fails(["show", "democratc"], "democratic")
    _fails(["list", "atacks"], "attacks")
    res = runner.invoke(app, ["plugins"])
    assert res.exit_code == 0 and "plugins" in res.output
    import json

    res = runner.invoke(app, ["plugins", "--json"])
    names = {p["name"]: p for p in json.loads(res.stdout)["plugins"]}
    assert names["demtui.plugins.attacks"]["status"] == "ok" and "attack:df-uap" in names["demtui.plugins.attacks"]["provides"]
    assert names["example"]["source"] == "entrypoint"  # the example package from examples/


def test_train_command_writes_a_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "victim.safetensors"
    res = runner.invoke(app, ["train", "--model", "smallcnn", "--dataset", "shapes", "--out", str(out),
                              "--set", "dataset.train_size=300", "--set", "dataset.test_size=100",
                              "--set", "victim.epochs=1", "--set", "model.width=4"])
    assert res.exit_code == 0, res.output
    assert out.exists() and out.stat().st_size > 1000
