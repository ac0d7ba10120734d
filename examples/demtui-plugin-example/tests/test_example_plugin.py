"""The example plugin passes demtui's contract checks and is found through its entry point."""

from demtui.registry import Registry
from demtui.config import load_config
from demtui.testing import check_attack, check_defense


def test_entry_point_registers_both_components() -> None:
    registry = Registry(load_config()).load()
    attack = registry.get("attack", "fgsm-uap")
    assert attack.entry == "demtui_example.attack:fgsm_uap"
    assert attack.provider.distribution == "demtui-plugin-example" and attack.provider.qualifier == "example"
    assert registry.get("attack", "fgsm-uap@example") is attack
    assert registry.get("defense", "input-smoothing").changes == "wrapper"


def test_an_even_kernel_is_refused_when_the_spec_is_resolved() -> None:
    import pytest

    from demtui.errors import ParamError

    schema = Registry(load_config()).load().get("defense", "input-smoothing").params
    with pytest.raises(ParamError, match="kernel must be odd"):
        schema.validate({"kernel": 4})


def test_metadata_and_light_import() -> None:
    from demtui.testing import check_light_import, check_metadata

    check_metadata("input-smoothing", kind="defense")
    check_light_import("demtui_example")


def test_attack_contract() -> None:
    check_attack("fgsm-uap")
    check_attack("fgsm-uap", target=None)


def test_defense_contract() -> None:
    check_defense("input-smoothing")


def test_headless_run_with_both_plugin_components(tmp_path, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from demtui.cli import app

    monkeypatch.setenv("DEMTUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    tiny = ["--set", "dataset.train_size=1000", "--set", "dataset.test_size=200", "--set", "victim.epochs=1",
            "--set", "attack.iterations=10", "--set", "run.eval_samples=100", "--set", "run.attack_samples=100",
            "--targets", "1,2"]
    res = CliRunner().invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--attack", "fgsm-uap",
                                   "--defense", "input-smoothing", "--out", str(tmp_path / "run"), *tiny])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["summary"]
    assert summary["sr_before"] is not None and summary["sr_after"] is not None and summary["delta_cacc"] is not None
    providers = json.loads((tmp_path / "run" / "results.json").read_text())["providers"]
    assert providers["attack"]["distribution"] == "demtui-plugin-example" and providers["attack"]["version"] == "0.1.0"
    assert providers["defense"]["entry_point"] == "example = demtui_example"
