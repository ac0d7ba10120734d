"""Plugin code at run time: blamed by name (exit 3), budgets enforced, providers recorded.

Each run uses the local test plugin in tests/plugin_fixtures (crashy.py + its neighbour
crashy_code.py) on the offline shapes data with the TINY budget of tests/test_sweep.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from demtui.cli import app

FIXTURES = Path(__file__).parent / "plugin_fixtures"
TINY = ["--set", "dataset.train_size=600", "--set", "dataset.test_size=100", "--set", "victim.epochs=1",
        "--set", "attack.iterations=5", "--set", "run.eval_samples=60", "--set", "run.attack_samples=60",
        "--targets", "1", "--set", "run.noise_baseline=false", "--set", "run.secondary=false"]


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(f'[plugins]\nlocal = ["{(FIXTURES / "crashy.py").as_posix()}"]\n')
    return path


def _run(registry_file: Path, out: Path, *args: str, debug: bool = False, tiny: list[str] = TINY):
    flags = ["--debug"] if debug else []
    return CliRunner().invoke(app, [*flags, "run", "--headless", "--quiet", "--device", "cpu", "--registry",
                                    str(registry_file), "--out", str(out), *tiny, *args])


def _text(res) -> str:
    """The output with the console's line wrapping undone."""
    return " ".join(res.output.split())


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_an_attack_that_raises_is_blamed_on_its_plugin_with_exit_3_and_its_trace_in_the_log(registry_file, tmp_path):
    res = _run(registry_file, tmp_path / "run", "--attack", "boom-attack", "--defense", "none")
    assert res.exit_code == 3, res.output
    assert "internal error" not in res.output
    text = _text(res)
    assert "attack 'boom-attack' from local plugin" in text and "crashy.py" in text
    assert "ZeroDivisionError" in text and "crafting the UAP" in text and "crashy_code:boom_attack" in text
    logged = [e for e in _events(tmp_path / "run") if e["type"] == "log" and e["level"] == "error"]
    assert logged and "crashy_code.py" in logged[-1]["trace"] and "return 1 / 0" in logged[-1]["trace"]
    assert _events(tmp_path / "run")[-1]["type"] == "run_failed"


def test_debug_prints_the_plugins_own_traceback_and_keeps_exit_3(registry_file, tmp_path):
    res = _run(registry_file, tmp_path / "run", "--attack", "boom-attack", "--defense", "none", debug=True)
    assert res.exit_code == 3
    assert "Traceback" in res.output and "return 1 / 0" in res.output


def test_dataset_and_model_code_are_blamed_before_anything_runs(registry_file, tmp_path):
    no_data_params = [a for a in TINY if not a.startswith("dataset.")]
    no_data_params = [a for i, a in enumerate(no_data_params) if not (a == "--set" and no_data_params[i + 1] == "--set")]
    res = _run(registry_file, tmp_path / "a", "--dataset", "boom-data", "--defense", "none", tiny=no_data_params)
    assert res.exit_code == 3 and "dataset 'boom-data'" in _text(res) and "disk on fire" in _text(res)
    res = _run(registry_file, tmp_path / "b", "--model", "boom-model", "--defense", "none")
    assert res.exit_code == 3 and "model 'boom-model'" in _text(res) and "building the model" in _text(res)


def test_a_wrapper_without_rebuild_fails_when_its_code_loads_before_any_attack(registry_file, tmp_path):
    res = _run(registry_file, tmp_path / "run", "--attack", "good-attack", "--defense", "no-rebuild")
    assert res.exit_code == 3 and "rebuild" in _text(res) and "defense 'no-rebuild'" in _text(res)
    assert not list((tmp_path / "run" / "artifacts").glob("uap_*"))  # failed before the attack stage


def test_a_defense_that_raises_and_a_wrapper_that_fails_later_are_blamed(registry_file, tmp_path):
    res = _run(registry_file, tmp_path / "a", "--attack", "good-attack", "--defense", "boom-defense")
    assert res.exit_code == 3 and "defense 'boom-defense'" in _text(res) and "KeyError" in _text(res)
    # the wrapper passes the defend stage's check (4 images) and fails on a full evaluation batch:
    # no boundary is around that forward pass, the traceback still names the plugin
    res = _run(registry_file, tmp_path / "b", "--attack", "good-attack", "--defense", "fragile-wrapper")
    text = _text(res)
    assert res.exit_code == 3, res.output
    assert "defense 'fragile-wrapper'" in text and "fragile forward" in text and "internal error" not in text


def test_a_builtin_crash_is_still_an_internal_error_but_names_the_component(registry_file, tmp_path, monkeypatch):
    from demtui.plugins.attacks import entries

    def broken(*args, **kwargs):
        raise IndexError("off by one")

    monkeypatch.setattr(entries, "df_uap", broken)
    res = _run(registry_file, tmp_path / "run", "--attack", "df-uap", "--defense", "none")
    text = _text(res)
    assert res.exit_code == 1
    assert "internal error" in text and "built-in attack 'df-uap'" in text and "report it" in text


def test_a_perturbation_over_budget_fails_the_stage_naming_the_plugin_and_the_norm(registry_file, tmp_path):
    res = _run(registry_file, tmp_path / "run", "--attack", "loud-attack", "--defense", "none")
    text = _text(res)
    assert res.exit_code == 3, res.output
    assert "attack 'loud-attack' from local plugin" in text
    assert "L∞ norm 0.1569 (40.0/255)" in text and "eps = 0.0392 (10.0/255)" in text
    assert not (tmp_path / "run" / "artifacts" / "uap_attack_1.safetensors").exists()
    res = _run(registry_file, tmp_path / "b", "--attack", "custom-loud", "--defense", "none")  # any Perturbation class
    assert res.exit_code == 3 and "L∞ norm 0.3000" in _text(res)


def test_providers_known_uaps_and_declared_subset_are_recorded(registry_file, tmp_path):
    run_dir = tmp_path / "run"
    res = _run(registry_file, run_dir, "--attack", "good-attack", "--defense", "uap-echo")
    assert res.exit_code == 0, res.output
    results = json.loads((run_dir / "results.json").read_text())
    providers = results["providers"]
    assert providers["attack"]["plugin"].endswith("crashy.py") and providers["attack"]["source"] == "local"
    assert providers["dataset"]["source"] == "builtin" and providers["dataset"]["distribution"] == "demtui"
    assert providers["defense"]["entry"] == "crashy_code:uap_echo"
    history = results["stages"]["defend"]["history"]
    assert history["subset"] == 32 and history["uaps"] == 1  # its declared subset_size; one known UAP per target
    assert 0 < history["uap_linf"][0] <= 10 / 255 + 1e-6
    budget = results["stages"]["attack"]["targets"]["1"]["budget"]
    assert budget["threat"] == "linf" and budget["measured"] <= budget["limit"]
    assert "crashy_code:good_attack" in (run_dir / "spec.toml").read_text().split("[run]")[0]  # a comment header
    report = (run_dir / "report.md").read_text()
    assert "## Components" in report and "`crashy_code:uap_echo`" in report


def test_parameter_rules_fail_at_spec_time(registry_file, tmp_path):
    res = _run(registry_file, tmp_path / "run", "--attack", "good-attack", "--defense", "odd-kernel",
               "--set", "defense.kernel=4")
    assert res.exit_code == 2 and "kernel must be odd, got 4" in _text(res)
    assert not (tmp_path / "run").exists()
