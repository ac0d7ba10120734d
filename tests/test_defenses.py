"""The defense suite of Tables 4 and 5 on a tiny offline victim: what each one claims, shown."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from demtui.context import RunContext
from demtui.contracts import DefenseData, DefenseResult
from demtui.errors import ModelError, ParamError, SpecError
from demtui.registry import get_registry
from demtui.testing import tiny_victim

#: Cost knobs cut to the bone: these tests are about behaviour, not robustness.
TINY_BUDGET = {"epochs": 1, "steps": 2, "iterations": 8, "batch_size": 32, "train_steps": 6, "runs": 3,
               "reverse_steps": 2, "overhead_images": 8, "unet_width": 8}
TRAINING = ("pgd-at", "pgd-at-targeted", "uap-at", "trades")
SMALL_CNN_STAGES = "conv2,conv4,conv6"  # the SmallCNN has no residual stages: its three conv-stage ends


@pytest.fixture(scope="module")
def victim() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    model, x, y, x_test, _ = tiny_victim()
    return model, x[:160], y[:160], x_test[:48].float() / 255


def _params(name: str, **overrides: Any) -> dict[str, Any]:
    schema = get_registry().get("defense", name).params
    values = {k: v for k, v in TINY_BUDGET.items() if schema.get(k) is not None}
    return schema.validate({**values, **overrides}, owner=name)


def _apply(name: str, victim, layer: str = "gap", targets: list[int] | None = None, **overrides: Any) -> DefenseResult:
    model, x, y, _ = victim
    data = DefenseData(x=x, y=y, num_classes=10, layer=layer, targets=[2] if targets is None else targets)
    fn = get_registry().get("defense", name).load()
    ctx = RunContext(device=torch.device("cpu"), seed=0)
    return fn(copy.deepcopy(model), data, _params(name, **overrides), ctx)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _one_sentence(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.rstrip().endswith((".", "?")), msg
    return msg


# --- training defenses ----------------------------------------------------------------

@pytest.mark.parametrize("name", TRAINING)
def test_training_defenses_change_weights_not_the_original(name: str, victim) -> None:
    model, *_ = victim
    before = copy.deepcopy(model)
    result = _apply(name, victim, **({"beta": 1.0} if name == "trades" else {}))
    assert isinstance(result, DefenseResult) and result.wrapper is None
    assert _same_state(model, before), "the defense touched the model it was not given"
    assert not _same_state(result.model, model), "a training defense must change the weights"
    epoch = result.history["epochs"][0]
    assert {"loss", "probe_acc", "seconds"} <= set(epoch) and result.history["seconds"] >= 0
    with torch.no_grad():
        assert result.model.eval()(victim[3][:4]).shape == (4, 10)


def test_a_destroyed_model_stops_the_stage_with_a_message() -> None:
    """TRADES with a large β on a small subset flattens outputs to uniform: near chance, no dominant class."""
    from demtui.plugins.defenses.finetune import _destroyed

    worked, stuck = {"acc": 1.0, "top_share": 0.1}, {"acc": 0.1, "top_share": 1.0}
    assert _destroyed(worked, {"acc": 0.12, "top_share": 0.3}, 10)  # uniform-ish outputs
    assert _destroyed(worked, {"acc": 0.1, "top_share": 0.95}, 10)  # one class
    assert not _destroyed(worked, {"acc": 0.7, "top_share": 0.2}, 10)  # a costly defense, not a destroyed model
    assert not _destroyed(stuck, {"acc": 0.1, "top_share": 0.9}, 10)  # it never worked (an untrained victim)


def test_targeted_at_uses_the_target_param_over_the_run_targets(victim) -> None:
    result = _apply("pgd-at-targeted", victim, target=7)
    assert result.history["targets"] == [7] and "adv_target_rate" in result.history["epochs"][0]


def test_known_uaps_are_crafted_from_the_repair_subset(victim) -> None:
    result = _apply("uap-at", victim, targets=[1, 4], uaps_per_target=2)
    assert result.history["known_uaps"] == 4  # 2 run targets × 2 each; no evaluation UAP is ever passed in


# --- wrapping defenses: original weights kept, save → rebuild → load ------------------

WRAPPERS = [("cfn", {"layers": SMALL_CNN_STAGES}), ("fns", {"layers": SMALL_CNN_STAGES, "variant": "gauss"}),
            ("sfr", {"layer": "conv1"}), ("densepure", {"sigma": 0.1})]


@pytest.mark.parametrize(("name", "overrides"), WRAPPERS, ids=[w[0] for w in WRAPPERS])
def test_wrappers_keep_the_original_weights_and_reload_exactly(name: str, overrides: dict, victim, tmp_path: Path) -> None:
    from demtui.plugins.models.builders import load_checkpoint, save_checkpoint

    model, _, _, xt = victim
    result = _apply(name, victim, **overrides)
    assert result.wrapper is not None and json.loads(json.dumps(result.wrapper)) == result.wrapper
    assert _same_state(result.model.model, model), "a wrapping defense must not alter the original weights"
    save_checkpoint(result.model, tmp_path / "defended.safetensors")
    rebuild = get_registry().get("defense", name).load().rebuild
    fresh = rebuild(copy.deepcopy(model), json.loads(json.dumps(result.wrapper)))
    load_checkpoint(fresh, tmp_path / "defended.safetensors")  # strict: every key, right shapes
    with torch.no_grad():
        assert torch.equal(fresh.eval()(xt), result.model.eval()(xt))


def test_sfr_trains_only_its_regeneration_units(victim) -> None:
    result = _apply("sfr", victim, layer="conv1", ratio=0.25)
    unit = result.model.units[0]
    assert len(unit.index) == 2  # a quarter of conv1's 8 filters
    assert unit.body[-1].weight.abs().sum() > 0, "the units start at zero and must have trained"
    assert result.history["regenerated"] == 2 and result.history["layer"] == "conv1"


# --- norm guards cap what they claim ----------------------------------------------------

def _around_guards(wrapper: torch.nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each guarded layer's output before its guard (a prepended hook) and after it (a hook added last)."""
    from demtui.plugins.defenses.feature_norm import NormGuard

    guarded = [p for p, unit in zip(wrapper.paths, wrapper.units, strict=True) if isinstance(unit, NormGuard)]
    seen: dict[str, list[torch.Tensor]] = {p: [] for p in guarded}
    hooks = []
    for path in guarded:
        module = wrapper.model.get_submodule(path)
        hooks.append(module.register_forward_hook(lambda _m, _i, o, p=path: seen[p].append(o.clone()), prepend=True))
        hooks.append(module.register_forward_hook(lambda _m, _i, o, p=path: seen[p].append(o.clone())))
    with torch.no_grad():
        wrapper(x)
    for h in hooks:
        h.remove()
    return {p: (v[0], v[1]) for p, v in seen.items()}


def _norms(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = f.float().norm(dim=1)  # (N, H, W): per-position channel norm
    return norm, norm.mean(dim=(1, 2), keepdim=True)


@pytest.mark.parametrize("variant", ["cfn", "fns-exp", "fns-gauss"])
def test_norm_guards_cap_hooked_feature_norms(variant: str, victim) -> None:
    """At every guarded layer and position: norm after ≤ clp × the spatial mean norm before; the cap binds."""
    name, _, kind = variant.partition("-")
    extra = {"variant": kind, "dr": 2.0} if name == "fns" else {}
    result = _apply(name, victim, layers=SMALL_CNN_STAGES, clp=1.1, **extra)
    binding = 0
    for path, (before, after) in _around_guards(result.model, victim[3]).items():
        norm_before, mean_before = _norms(before)
        norm_after, _ = _norms(after)
        cap = 1.1 * mean_before
        assert (norm_after <= cap * (1 + 1e-5) + 1e-6).all(), (path, float((norm_after - cap).max()))
        binding += int((norm_before > cap).sum())
    assert binding > 0, "the test must exercise positions above the threshold"


def test_fns_suppresses_by_its_formula_and_dr_one_is_cfn() -> None:
    from demtui.plugins.defenses.feature_norm import NormGuard

    torch.manual_seed(0)
    f = torch.randn(4, 16, 6, 6)
    f[:, :, 2, 3] *= 8  # a few dominant positions, the UAP signature CFN targets
    cfn = NormGuard(1.2)
    assert torch.allclose(NormGuard(1.2, dr=1.0, variant="gauss")(f), cfn(f))
    norm, mean = _norms(f)
    thr = 1.2 * mean
    r = norm / thr
    for variant, power in (("exp", (r - 1).clamp_min(0)), ("gauss", (r - 1).clamp_min(0) ** 2)):
        out, _ = _norms(NormGuard(1.2, dr=1.5, variant=variant)(f))
        expected = torch.where(r > 1, thr * 1.5 ** -power, norm)
        assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5)
        assert (out <= thr + 1e-5).all() and (out[r > 1] < thr.expand_as(out)[r > 1]).all()
    clipped, _ = _norms(cfn(f))
    assert torch.allclose(clipped, torch.minimum(norm, thr), rtol=1e-4, atol=1e-5)


def test_bn_recalibration_equals_batchnorm_with_the_re_estimated_statistics(victim) -> None:
    """The shift units reproduce, exactly, a guarded copy whose BatchNorm buffers hold the new statistics."""
    from demtui.plugins.defenses.feature_norm import NormGuard, _reestimate, feature_norm_defense
    from demtui.plugins.defenses.wrapping import HookedWrapper

    model, x, _, xt = victim
    wrapper, spec, _ = feature_norm_defense(copy.deepcopy(model), layers="conv2,conv4", clp=1.1, recalibrate=x)
    assert spec["bn_layers"] == ["conv3.1", "conv4.1", "conv5.1", "conv6.1"]  # after the first guard only
    assert _same_state(wrapper.model, model)
    reference = HookedWrapper(copy.deepcopy(model), ["conv2", "conv4"], [NormGuard(1.1), NormGuard(1.1)])
    new = _reestimate(HookedWrapper(copy.deepcopy(model), ["conv2", "conv4"], [NormGuard(1.1), NormGuard(1.1)]),
                      spec["bn_layers"], x, 128)
    for path, bn in new.items():
        target = reference.model.get_submodule(path)
        target.running_mean.copy_(bn.running_mean)
        target.running_var.copy_(bn.running_var)
        assert not torch.allclose(bn.running_var, model.get_submodule(path).running_var)  # clipping moved them
    with torch.no_grad():
        assert torch.allclose(wrapper.eval()(xt), reference.eval()(xt), rtol=1e-4, atol=1e-4)
        plain = feature_norm_defense(copy.deepcopy(model), layers="conv2,conv4", clp=1.1)[0].eval()(xt)
    assert not torch.allclose(plain, reference(xt), atol=1e-3)  # without recalibration the output differs
    shift = wrapper.units[-1]
    y = torch.randn(2, shift.scale.numel(), 3, 3)
    assert torch.equal(shift.train()(y), y)  # batch statistics in train mode: nothing to correct


def test_bn_shift_units_live_on_their_batchnorms_device() -> None:
    """Built beside a model on CUDA, the units must be on CUDA too (meta stands in for it here)."""
    from demtui.plugins.defenses.feature_norm import BatchNormShift

    old, new = torch.nn.BatchNorm2d(4, device="meta"), torch.nn.BatchNorm2d(4, device="meta")
    unit = BatchNormShift.between(old, new)
    assert unit.scale.device.type == "meta" and unit.shift.device.type == "meta"


def test_residual_stages_are_found_in_wrn_and_resnet() -> None:
    from torchvision.models import resnet18

    from demtui.plugins.defenses.wrapping import residual_stages
    from demtui.plugins.models.builders import Normalized, build_wrn

    assert residual_stages(build_wrn("10-1", 10)) == ["net.block1", "net.block2", "net.block3"]
    assert residual_stages(Normalized(resnet18(num_classes=10), (0.5,) * 3, (0.25,) * 3)) == [
        f"net.layer{i}" for i in range(1, 5)]


def test_cfn_follows_wrn_stages_without_explicit_layers(victim) -> None:
    from demtui.plugins.models.builders import build_wrn

    wrn = build_wrn("10-1", 10).eval()
    _, x, y, _ = victim
    data = DefenseData(x=x[:16], y=y[:16], num_classes=10, layer="net.pool", targets=[])
    fn = get_registry().get("defense", "cfn").load()
    result = fn(copy.deepcopy(wrn), data, _params("cfn"), RunContext(device=torch.device("cpu")))
    assert result.wrapper["layers"] == ["net.block1", "net.block2", "net.block3"]
    assert _same_state(result.model.model, wrn)


# --- DensePure --------------------------------------------------------------------------

def test_densepure_with_sigma_zero_returns_the_classifiers_answer(victim) -> None:
    model, _, _, xt = victim
    result = _apply("densepure", victim, sigma=0.0)
    with torch.no_grad():
        assert torch.equal(result.model.eval()(xt), model(xt))
    assert result.history["inference"]["acc_purified"] == result.history["inference"]["acc_plain"]


def test_densepure_votes_over_its_runs_and_reports_overhead(victim) -> None:
    _, _, _, xt = victim
    result = _apply("densepure", victim, sigma=0.1, runs=3)
    with torch.no_grad():
        out = result.model.eval()(xt[:6])
    votes = out.floor()
    assert torch.equal(votes.sum(1), torch.full((6,), 3.0))  # one vote per run, plus 0.5·mean softmax < 1
    assert torch.equal(out.argmax(1), (votes + 0.5 * (out - votes)).argmax(1))
    inference = result.history["inference"]
    assert inference["seconds_per_image_purified"] > inference["seconds_per_image_plain"] > 0
    assert result.history["epochs"] and "loss" in result.history["epochs"][0]


# --- bad input: one sentence naming the choice to change ---------------------------------

def test_unknown_layer_suggests_the_closest(victim) -> None:
    with pytest.raises(ModelError, match=r"Layer 'conv44' does not exist.*Did you mean 'conv4'\?.*defense\.layers") as err:
        _apply("cfn", victim, layers="conv2,conv44")
    _one_sentence(err.value)
    with pytest.raises(ModelError, match=r"Layer 'convv1' does not exist.*Did you mean 'conv1'\?.*defense\.layer\b") as err:
        _apply("sfr", victim, layer="convv1")
    _one_sentence(err.value)


def test_cfn_on_a_model_without_residual_stages_names_the_param(victim) -> None:
    for name in ("cfn", "fns"):
        with pytest.raises(ModelError, match=r"residual stages.*set defense\.layers.*conv4,conv6") as err:
            _apply(name, victim)
        _one_sentence(err.value)


def test_negative_sigma_is_refused_by_schema_and_entry(victim) -> None:
    with pytest.raises(ParamError, match=r"sigma.*\[0, inf\]"):
        _params("densepure", sigma=-0.1)
    model, x, y, _ = victim
    fn = get_registry().get("defense", "densepure").load()
    bad = {**_params("densepure"), "sigma": -0.1}
    with pytest.raises(ParamError, match=r"sigma.*≥ 0") as err:
        fn(copy.deepcopy(model), DefenseData(x=x, y=y, num_classes=10, layer="gap", targets=[]), bad,
           RunContext(device=torch.device("cpu")))
    _one_sentence(err.value)


def test_missing_diffusion_checkpoint_says_how_to_get_one(victim, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"does not exist; pass a local diffusers directory.*train_steps") as err:
        _apply("densepure", victim, checkpoint=str(tmp_path / "no-such-ddpm"))
    _one_sentence(err.value)
    with pytest.raises(ModelError, match=r"needs a diffusion model.*checkpoint.*train_steps"):
        _apply("densepure", victim, train_steps=0)


def test_targeted_at_without_a_target_names_the_fix(victim) -> None:
    with pytest.raises(SpecError, match=r"defense\.target"):
        _apply("pgd-at-targeted", victim, targets=[])
    with pytest.raises(SpecError, match=r"Class 12 .*classes 0–9"):
        _apply("pgd-at-targeted", victim, target=12)


# --- end to end through the CLI -----------------------------------------------------------

E2E = ["--set", "dataset.train_size=1000", "--set", "dataset.test_size=200", "--set", "victim.epochs=1",
       "--set", "attack.iterations=10", "--set", "run.eval_samples=100", "--set", "run.attack_samples=100",
       "--set", "defense.subset_size=64", "--targets", "1,2"]


def _cli(out: Path, *args: str):
    from demtui.cli import app

    return CliRunner().invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out),
                                    *E2E, *args])


def _summary_ok(result) -> dict:
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for key in ("cacc_before", "cacc_after", "sr_before", "sr_after", "aacc_before", "aacc_after", "delta_cacc",
                "secondary_sr", "defense_seconds"):
        assert doc["summary"].get(key) is not None, key
    return doc


def test_cli_runs_a_training_defense_end_to_end(tmp_path: Path) -> None:
    _summary_ok(_cli(tmp_path / "run", "--defense", "pgd-at", "--set", "defense.epochs=1", "--set", "defense.steps=2"))
    defend = json.loads((tmp_path / "run" / "results.json").read_text())["stages"]["defend"]
    assert defend["wrapper"] is None and defend["history"]["epochs"][0]["stage"] == "repair"


def test_cli_wrapping_defense_resumes_from_its_saved_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut the run after defend; --resume must rebuild the wrapper from JSON + safetensors to evaluate."""
    from demtui import stages
    from demtui.events import read_events

    out, args = tmp_path / "run", ("--defense", "cfn", "--set", f"defense.layers={SMALL_CNN_STAGES}")
    real = stages.evaluate

    def interrupted(state):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "evaluate", interrupted)
    assert _cli(out, *args).exit_code == 130
    monkeypatch.setattr(stages, "evaluate", real)
    doc = _summary_ok(_cli(out, "--resume", *args))
    assert doc["summary"]["cacc_after"] > 0
    skipped = [e["stage"] for e in read_events(out / "events.jsonl") if e["type"] == "stage_skipped"]
    assert "defend" in skipped
    defend = json.loads((out / "results.json").read_text())["stages"]["defend"]
    assert defend["wrapper"]["layers"] == SMALL_CNN_STAGES.split(",")
