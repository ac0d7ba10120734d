"""The attack suite (issue 3): threat models, save/load, seeds, strength vs noise, bad input, CLI.

Every attack runs against one tiny offline victim (``demtui.testing.tiny_victim``: a
width-8 SmallCNN trained for a few seconds on 2000 ``shapes`` images) at small budgets, so the module
stays well under a minute on two CPU cores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from demtui import perturbation as P
from demtui.cli import app
from demtui.context import RunContext
from demtui.contracts import AttackData
from demtui.errors import DemtuiError, ParamError, RunError, SpecError
from demtui.evaluation import random_sign_noise
from demtui.metrics import targeted_success_rate
from demtui.perturbation import AdditivePerturbation, load_perturbation
from demtui.plugins.attacks.patch import PatchPerturbation
from demtui.registry import get_registry
from demtui.testing import tiny_victim

EPS = 10 / 255
#: Small budgets: enough to beat noise clearly on the tiny victim, a second or two each.
SMALL: dict[str, dict[str, Any]] = {
    "sgd-uap": {"epochs": 3, "step": 0.1},
    "sga": {"epochs": 2, "outer_batch": 100, "inner_steps": 1},
    # 10% (a 10×10 patch). The paper's 2% is a 5×5 patch at 32×32, which this victim mostly
    # ignores. At 6% (8×8) the SR depended on the victim (which changes with the CPU and thread
    # count) and on the patch's random start: measured 0.49–1.00 over tiny victims 0/1/2 × attack
    # seeds 3/4/5 (100–1000 steps), and 0.289 on the CI machine — LaVAN's loss CE(t) − CE(s) is the
    # unbounded logit gap z_s − z_t, so it raises the mean gap rather than the count of flipped
    # images (docs/attacks.md). At 10% after 100 steps: SR 0.96–1.00 over victims 0/1/2 × seeds
    # 3–6 (12 runs), random patch of the same size and place 0.00–0.03.
    "lavan": {"iterations": 100, "area": 0.1},
    "gap": {"train_steps": 100, "lr": 1e-3},
    "deepfool-uap": {"max_passes": 1, "max_iter": 10},
    "adaptive-df-uap": {"iterations": 100},
}
ADDITIVE = ["sgd-uap", "sga", "gap", "deepfool-uap", "adaptive-df-uap"]
TARGET = 3  # one target for every attack (no per-attack picking)


@pytest.fixture(scope="module")
def victim():
    torch.manual_seed(0)
    return tiny_victim()


def _craft(victim, name: str, target: int | None, seed: int = 0, **over: Any):
    model, x, y, *_ = victim
    attack = get_registry().get("attack", name)
    params = attack.params.validate({**SMALL[name], **over}, owner=name)
    data = AttackData(x=x[:300], y=y[:300], num_classes=10, layer="gap")
    return attack.load()(model, data, target, params, RunContext(device=torch.device("cpu"), seed=seed))


def _pred(model: torch.nn.Module, x: torch.Tensor, pert: P.Perturbation | None = None) -> torch.Tensor:
    with torch.no_grad():
        xf = x.float() / 255
        return model(xf if pert is None else pert.apply(xf)).argmax(1)


def _one_sentence(exc: DemtuiError) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.endswith((".", "?")) and len(msg) < 240, msg
    return msg


@pytest.mark.parametrize("target", [TARGET, None], ids=["targeted", "untargeted"])
@pytest.mark.parametrize("name", ADDITIVE)
def test_additive_attacks_keep_the_linf_ball_and_reload_bit_exactly(victim, name, target, tmp_path) -> None:
    _, _, _, x_test, _ = victim
    pert = _craft(victim, name, target)
    assert isinstance(pert, AdditivePerturbation) and pert.delta.shape == (1, 3, 32, 32)
    assert pert.linf() <= EPS + 1e-7
    xb = x_test[:64].float() / 255
    out = pert.apply(xb)
    assert out.min() >= 0 and out.max() <= 1 and (out - xb).abs().max() <= EPS + 1e-6
    again = load_perturbation(pert.save(tmp_path / "u.safetensors"))
    assert torch.equal(again.delta, pert.delta) and torch.equal(again.apply(xb), out)
    assert torch.equal(_craft(victim, name, target).delta, pert.delta)  # same seed, same UAP
    assert not torch.equal(_craft(victim, name, target, seed=1).delta, pert.delta)
    noise = pert.random_like(torch.Generator().manual_seed(0))  # the engine's noise baseline: ±ε everywhere
    assert torch.allclose(noise.delta.abs(), torch.full_like(noise.delta, pert.eps))


@pytest.mark.parametrize("location", ["fixed", "random"])
def test_lavan_changes_only_pixels_under_its_mask(victim, location, tmp_path) -> None:
    _, _, _, x_test, _ = victim
    pert = _craft(victim, "lavan", TARGET, location=location, area=0.02)
    assert isinstance(pert, PatchPerturbation) and pert.patch.shape == (3, 5, 5)  # round(√(0.02·32²)) = 5
    xb = x_test[:64].float() / 255
    out = pert.apply(xb)
    tops, lefts = pert.places(xb.shape[0])
    inside = torch.zeros(64, 1, 32, 32, dtype=torch.bool)
    for i, (t, l) in enumerate(zip(tops.tolist(), lefts.tolist())):
        inside[i, :, t:t + 5, l:l + 5] = True
    changed = (out != xb).any(1, keepdim=True)
    assert not (changed & ~inside).any(), "pixels outside the patch changed"
    assert changed.sum() > 0 and out.min() >= 0 and out.max() <= 1
    # its random counterpart (the engine's noise baseline): random colours, same mask, same places
    rand = pert.random_like(torch.Generator().manual_seed(0))
    assert isinstance(rand, PatchPerturbation) and torch.equal(rand.mask, pert.mask)
    assert not torch.equal(rand.patch, pert.patch)
    assert all(torch.equal(a, b) for a, b in zip(rand.places(64), (tops, lefts)))
    changed_rand = (rand.apply(xb) != xb).any(1, keepdim=True)
    assert changed_rand.any() and not (changed_rand & ~inside).any()
    if location == "random":
        assert len(set(zip(tops.tolist(), lefts.tolist()))) > 1
    else:
        assert (tops == 13).all() and (lefts == 13).all()  # centred by default
    again = load_perturbation(pert.save(tmp_path / "p.safetensors"))
    assert torch.equal(again.apply(xb), out) and torch.equal(again.patch, pert.patch)
    assert torch.equal(_craft(victim, "lavan", TARGET, location=location, area=0.02).apply(xb), out)


def test_a_saved_patch_loads_in_a_process_that_never_imported_its_module(victim, tmp_path, monkeypatch) -> None:
    """The header names the defining module; load_perturbation imports it on demand."""
    pert = PatchPerturbation(torch.rand(3, 4, 4), None, (32, 32), top=2, left=3, seed=5)
    path = pert.save(tmp_path / "p.safetensors")
    monkeypatch.delitem(P._KINDS, "patch")
    monkeypatch.delitem(sys.modules, "demtui.plugins.attacks.patch")
    again = load_perturbation(path)
    assert type(again).__name__ == "PatchPerturbation" and again.meta() == pert.meta()
    assert torch.equal(again.tensors()["patch"], pert.patch)


@pytest.mark.parametrize("name", ADDITIVE + ["lavan"])
def test_targeted_attacks_beat_random_noise_of_the_same_budget(victim, name) -> None:
    """SR far above ±ε sign noise (additive) or a random patch of the same size and place (LaVAN)."""
    model, _, _, x_test, y_test = victim
    pert = _craft(victim, name, TARGET)
    baseline = pert.random_like(torch.Generator().manual_seed(3))  # what the engine's noise baseline uses
    assert baseline is not None and type(baseline) is type(pert)
    sr = targeted_success_rate(_pred(model, x_test, pert), y_test, TARGET)
    sr_noise = targeted_success_rate(_pred(model, x_test, baseline), y_test, TARGET)
    assert sr >= sr_noise + 0.3, (name, sr, sr_noise)


def test_untargeted_attacks_fool_more_than_noise(victim) -> None:
    """Fooling rate vs ±ε sign noise, which alone flips ~11% of this victim's test predictions.

    Measured at these budgets: sgd-uap 0.90, sga 0.90, gap 0.46, deepfool-uap 0.70.
    """
    model, _, _, x_test, _ = victim
    clean = _pred(model, x_test)
    noise = random_sign_noise((1, 3, 32, 32), EPS, torch.Generator().manual_seed(4))
    fooled_noise = float((_pred(model, x_test, noise) != clean).float().mean())
    for name, over, margin in (("sgd-uap", {}, 0.5), ("sga", {"epochs": 5}, 0.5), ("gap", {}, 0.2),
                               ("deepfool-uap", {}, 0.3)):
        fooled = float((_pred(model, x_test, _craft(victim, name, None, **over)) != clean).float().mean())
        assert fooled >= fooled_noise + margin, (name, fooled, fooled_noise)


def test_deepfool_uap_stops_at_its_pass_cap_when_the_rate_is_unreachable(victim) -> None:
    from demtui.plugins.attacks.deepfool_uap import craft_deepfool_uap

    model, x, *_ = victim
    delta, info = craft_deepfool_uap(model, x[:60], None, eps=1 / 255, fooling_target=1.0, max_passes=2, max_iter=3)
    assert info["passes"] == 2 and info["rate"] < 1.0 and delta.abs().max() <= 1 / 255 + 1e-7


# ---------------------------------------------------------------------------------- bad input

def test_a_patch_larger_than_the_image_is_a_one_sentence_error(victim) -> None:
    with pytest.raises(SpecError) as err:
        _craft(victim, "lavan", TARGET, size=40)
    assert "does not fit in 32×32" in _one_sentence(err.value)
    with pytest.raises(ParamError) as err:
        get_registry().get("attack", "lavan").params.validate({"area": 1.5})
    _one_sentence(err.value)
    with pytest.raises(SpecError) as err:
        _craft(victim, "lavan", TARGET, top=30, left=0)
    assert "leaves the 32×32 image" in _one_sentence(err.value)


@pytest.mark.parametrize("rho", [-0.1, 1.5])
def test_rho_outside_0_1_is_rejected(victim, rho) -> None:
    with pytest.raises(ParamError) as err:
        get_registry().get("attack", "adaptive-df-uap").params.validate({"rho": rho})
    assert "rho" in _one_sentence(err.value)
    model, x, y, *_ = victim
    fn = get_registry().get("attack", "adaptive-df-uap").load()
    params = {**get_registry().get("attack", "adaptive-df-uap").params.defaults(), "rho": rho}
    with pytest.raises(ParamError):  # the adapter checks too, for callers that skip the schema
        fn(model, AttackData(x[:8], y[:8], 10, "gap"), 1, params, RunContext(device=torch.device("cpu")))


def test_adaptive_df_uap_defaults_to_rho_half() -> None:
    assert get_registry().get("attack", "adaptive-df-uap").params.defaults()["rho"] == 0.5
    assert get_registry().get("attack", "df-uap").params.defaults()["rho"] == 0.0


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_target_that_does_not_exist_is_a_one_sentence_error(victim, name) -> None:
    with pytest.raises(SpecError) as err:
        _craft(victim, name, 10)
    assert "Target class 10 does not exist" in _one_sentence(err.value)


def test_a_diverging_gap_generator_is_a_run_error(victim) -> None:
    model, x, y, *_ = victim

    class NaNModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            return self.inner(inp) * float("nan")

    fn = get_registry().get("attack", "gap").load()
    params = get_registry().get("attack", "gap").params.validate({"train_steps": 3})
    with pytest.raises(RunError) as err:
        fn(NaNModel(), AttackData(x[:16], y[:16], 10, "gap"), 1, params, RunContext(device=torch.device("cpu")))
    assert "diverged" in _one_sentence(err.value)


# ---------------------------------------------------------------------------------- end to end

runner = CliRunner()
BASE = ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--defense", "democratic",
        "--set", "dataset.train_size=1000", "--set", "dataset.test_size=200", "--set", "victim.epochs=1",
        "--set", "defense.epochs=1", "--set", "defense.refine_epochs=0", "--set", "run.eval_samples=100",
        "--set", "run.attack_samples=100", "--set", "run.card=off", "--targets", "1"]  # card: tests/test_fidelity.py
E2E = {
    "sgd-uap": ["--set", "attack.epochs=1"],
    "sga": ["--set", "attack.epochs=1", "--set", "attack.inner_steps=1", "--set", "attack.outer_batch=50"],
    "lavan": ["--set", "attack.iterations=10", "--set", "attack.location=random"],
    "gap": ["--set", "attack.train_steps=10", "--set", "run.mode=untargeted"],
    "deepfool-uap": ["--set", "attack.max_passes=1", "--set", "attack.max_iter=3"],
    "adaptive-df-uap": ["--set", "attack.iterations=10"],
}


@pytest.mark.parametrize("name", sorted(E2E))
def test_each_attack_runs_end_to_end_with_the_secondary_stage(name, tmp_path: Path) -> None:
    out = tmp_path / name
    res = runner.invoke(app, [*BASE, "--attack", name, "--out", str(out), *E2E[name]])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["status"] == "finished"
    assert set(doc["stage_seconds"]) == {"baseline", "attack", "analyse", "defend", "evaluate", "secondary"}
    assert doc["summary"]["secondary_sr"] is not None
    results = json.loads((out / "results.json").read_text())
    assert results["stages"]["attack"]["noise_kind"] == ("patch" if name == "lavan" else "additive")
    for stage in ("attack", "secondary"):
        (entry,) = results["stages"][stage]["targets"].values()
        pert = load_perturbation(out / entry["path"])
        assert isinstance(pert, PatchPerturbation if name == "lavan" else AdditivePerturbation)
        assert (out / entry["path"].replace(".safetensors", ".png")).exists()
