"""`demtui new-plugin` writes a package that loads as a plugin and passes the contract checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from demtui.cli import app
from demtui.config import load_config
from demtui.registry import Registry
from demtui.errors import ParamError
from demtui.testing import check_attack, check_defense, check_light_import


def test_new_plugin_is_a_working_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = CliRunner().invoke(app, ["new-plugin", "My UAP", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    root = tmp_path / "demtui-my-uap"
    assert (root / "pyproject.toml").read_text().count('demtui_my_uap = "demtui_my_uap"') == 1
    # Load it the way a user's registry.toml would (local module), without installing.
    monkeypatch.syspath_prepend(str(root / "src"))
    (tmp_path / "registry.toml").write_text('[plugins]\nlocal = ["demtui_my_uap"]\n')
    monkeypatch.chdir(tmp_path)
    registry = Registry(load_config()).load(entry_points=False)
    attack, defense = registry.get("attack", "my-uap-attack"), registry.get("defense", "my-uap-defense")
    check_attack(attack)
    check_defense(defense)
    # the new contract: everything from demtui.api, a spec-time rule, a declared subset, light imports
    assert "from demtui.api import" in (root / "src/demtui_my_uap/__init__.py").read_text()
    with pytest.raises(ParamError, match="must not exceed eps"):
        attack.params.validate({"eps": 0.01, "step_size": 0.02})
    assert defense.engine_params() == ["subset_fraction", "subset_size"]
    assert "train_defense" in (root / "src/demtui_my_uap/defense.py").read_text()
    monkeypatch.setenv("PYTHONPATH", str(root / "src"))
    check_light_import("demtui_my_uap")
    assert "uv add --editable" in res.output
    sys.modules.pop("demtui_my_uap", None)


def test_new_plugin_refuses_to_overwrite_and_bad_names(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["new-plugin", "x1", "--dir", str(tmp_path)]).exit_code == 0
    again = runner.invoke(app, ["new-plugin", "x1", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(app, ["new-plugin", "9lives", "--dir", str(tmp_path)])
    assert bad.exit_code == 2 and "start with a letter" in bad.output
