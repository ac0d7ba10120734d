"""The CUDA precision path (bf16 autocast, channels_last), exercised on the CPU.

On CUDA every attack, defense and evaluation runs under ``ctx.autocast()`` in bf16 on a
channels_last model. CI has no GPU, so dtype mistakes there (a bf16 tensor saved as a
perturbation, an fp32/bf16 mix in an in-place op, an entropy in bf16) would only show on
the first GPU run. CPU autocast supports bf16 too: a context that asks for it runs the
same code paths here, at tiny budgets.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from demtui.context import RunContext
from demtui.contracts import AttackData, DefenseData
from demtui.evaluation import entropies, predict_under
from demtui.perturbation import load_perturbation
from demtui.registry import get_registry
from demtui.testing import tiny_victim

EPS = 10 / 255
ATTACKS: dict[str, dict[str, Any]] = {
    "df-uap": {"iterations": 20},
    "adaptive-df-uap": {"iterations": 20},
    "sgd-uap": {"epochs": 1},
    "sga": {"epochs": 1, "outer_batch": 100, "inner_steps": 1},
    "lavan": {"iterations": 20, "area": 0.06},
    "gap": {"train_steps": 10},
    "deepfool-uap": {"max_passes": 1, "max_iter": 5},
}
DEFENSES: dict[str, dict[str, Any]] = {
    "democratic": {"epochs": 1, "steps": 2, "refine_epochs": 1},
    "pgd-at": {"epochs": 1, "steps": 2},
    "pgd-at-targeted": {"epochs": 1, "steps": 2},
    "uap-at": {"epochs": 1, "iterations": 8},
    "trades": {"epochs": 1, "steps": 2, "beta": 1.0},
    "sfr": {"iterations": 8, "epochs": 1, "layer": "conv1"},
    "cfn": {"layers": "conv2,conv4,conv6"},
    "fns": {"layers": "conv2,conv4,conv6"},
    "densepure": {"train_steps": 4, "runs": 3, "reverse_steps": 2, "overhead_images": 4, "unet_width": 8},
}


class Bf16Context(RunContext):
    """A CPU context that takes the CUDA path: bf16 autocast and channels_last."""

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return torch.bfloat16

    @property
    def channels_last(self) -> bool:
        return True


@pytest.fixture(scope="module")
def victim():
    model, x, y, x_test, y_test = tiny_victim()
    model.to(memory_format=torch.channels_last)  # as prepare() does on CUDA
    return model, x[:200], y[:200], x_test[:64], y_test[:64]


def _params(kind: str, name: str, values: dict[str, Any]) -> dict[str, Any]:
    schema = get_registry().get(kind, name).params
    return schema.validate({k: v for k, v in values.items() if schema.get(k) is not None}, owner=name)


def test_the_context_really_autocasts_to_bf16() -> None:
    ctx = Bf16Context(device=torch.device("cpu"))
    with ctx.autocast():
        out = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_under_bf16_give_fp32_perturbations_in_their_bound(name: str, victim, tmp_path: Path) -> None:
    model, x, y, x_test, _ = victim
    attack = get_registry().get("attack", name)
    data = AttackData(x=x, y=y, num_classes=10, layer="gap")
    pert = attack.load()(model, data, 3, _params("attack", name, ATTACKS[name]), Bf16Context(torch.device("cpu")))
    tensors = {k: v for k, v in vars(pert).items() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    assert tensors and all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in tensors.values()), (
        {k: v.dtype for k, v in tensors.items()})
    xf = x_test.float() / 255
    applied = pert.apply(xf)
    assert applied.dtype == torch.float32 and 0 <= float(applied.min()) and float(applied.max()) <= 1
    if name != "lavan":
        assert float((applied - xf).abs().max()) <= EPS + 1e-6
    pert.save(tmp_path / "p.safetensors")
    assert torch.equal(load_perturbation(tmp_path / "p.safetensors").apply(xf), applied)


@pytest.mark.parametrize("name", list(DEFENSES))
def test_defenses_under_bf16_give_finite_models_that_evaluate(name: str, victim) -> None:
    model, x, y, x_test, y_test = victim
    ctx = Bf16Context(device=torch.device("cpu"), seed=0)
    data = DefenseData(x=x, y=y, num_classes=10, layer="gap", targets=[3])
    defense = get_registry().get("defense", name)
    result = defense.load()(copy.deepcopy(model), data, _params("defense", name, DEFENSES[name]), ctx)
    state = result.model.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert all(v.dtype != torch.bfloat16 for v in state.values()), "weights must stay fp32 under autocast"
    preds = predict_under(result.model, x_test, [None], batch_size=32, ctx=ctx)
    assert preds.shape == (1, len(x_test))
    accuracy = float((preds[0] == y_test).float().mean())
    assert not math.isnan(accuracy)


def test_entropy_under_bf16_is_computed_in_fp32(victim) -> None:
    model, _, _, x_test, _ = victim
    ctx = Bf16Context(device=torch.device("cpu"))
    got = entropies(model, x_test, {"deep2": "gap", "middle1": "conv3"}, batch_size=32, ctx=ctx)
    reference = entropies(model, x_test, {"deep2": "gap", "middle1": "conv3"}, batch_size=32,
                          ctx=RunContext(device=torch.device("cpu")))
    for role, values in got.items():
        assert values.dtype == torch.float32 and torch.isfinite(values).all()
        # bf16 activations, fp32 entropy: close to the fp32 run, not equal
        assert torch.allclose(values, reference[role], rtol=0.05, atol=0.05), role
