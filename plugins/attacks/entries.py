"""Adapters from the attack contract to the algorithm modules (heavy: imports torch).

Every adapter has the contract's signature ``fn(model, data, target, params, ctx)``,
checks what the schema cannot (the target exists, ρ is in range), runs the algorithm
with the run's device, seed, progress and cancellation, and wraps the result in a
Perturbation. The seed differs per target so each target's UAP is its own draw.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from demtui.contracts import AttackData
from demtui.errors import ParamError, SpecError
from demtui.perturbation import AdditivePerturbation, Perturbation


def _check_target(data: AttackData, target: int | None) -> None:
    if target is not None and not 0 <= target < data.num_classes:
        raise SpecError(f"Target class {target} does not exist; the model has classes 0–{data.num_classes - 1}.")


def _seed(ctx: Any, target: int | None) -> int:
    return ctx.seed + (target or 0)


def _common(ctx: Any, target: int | None) -> dict[str, Any]:
    return {"seed": _seed(ctx, target), "device": ctx.device, "progress": ctx.progress,
            "should_stop": ctx.should_stop}


def df_uap(model: nn.Module, data: AttackData, target: int | None, params: dict[str, Any], ctx: Any) -> AdditivePerturbation:
    """DF-UAP (targeted or not; ρ > 0 makes it the entropy-aware adaptive attack of Eq. 11)."""
    from demtui.plugins.attacks.df_uap import craft_df_uap

    _check_target(data, target)
    rho = float(params.get("rho", 0.0))
    if not 0.0 <= rho <= 1.0:
        raise ParamError(f"Parameter 'rho' must be in [0, 1], got {rho:g}.")
    with ctx.autocast():
        delta = craft_df_uap(
            model, data.x, data.y, target, eps=params["eps"], iterations=params["iterations"], lr=params["lr"],
            kappa=params["kappa"], batch_size=params["batch_size"], seed=_seed(ctx, target),
            device=ctx.device, entropy_layer=data.layer if rho > 0 else None,
            rho=rho, loss=params.get("loss", "fixed-ref"), progress=ctx.progress, should_stop=ctx.should_stop,
        )
    ctx.check_cancelled()
    return AdditivePerturbation(delta, params["eps"])


def sgd_uap(model: nn.Module, data: AttackData, target: int | None, params: dict[str, Any], ctx: Any) -> AdditivePerturbation:
    """sPGD / SGD-UAP: clipped-CE sign steps on the batch-mean gradient."""
    from demtui.plugins.attacks.sgd_uap import craft_sgd_uap

    _check_target(data, target)
    with ctx.autocast():
        delta = craft_sgd_uap(model, data.x, target, eps=params["eps"], epochs=params["epochs"],
                              step=params["step"], beta=params["beta"], batch_size=params["batch_size"],
                              **_common(ctx, target))
    ctx.check_cancelled()
    return AdditivePerturbation(delta, params["eps"])


def sga(model: nn.Module, data: AttackData, target: int | None, params: dict[str, Any], ctx: Any) -> AdditivePerturbation:
    """SGA: inner minibatch sign steps, outer step on the aggregated gradient."""
    from demtui.plugins.attacks.sga import craft_sga

    _check_target(data, target)
    with ctx.autocast():
        delta = craft_sga(model, data.x, target, eps=params["eps"], epochs=params["epochs"],
                          outer_batch=params["outer_batch"], minibatch=params["minibatch"],
                          inner_steps=params["inner_steps"], inner_step=params["inner_step"],
                          outer_step=params["outer_step"], beta=params["beta"], **_common(ctx, target))
    ctx.check_cancelled()
    return AdditivePerturbation(delta, params["eps"])


def lavan(model: nn.Module, data: AttackData, target: int | None, params: dict[str, Any], ctx: Any) -> Perturbation:
    """LaVAN: a visible patch covering ``area`` of the image, fixed or random per image."""
    from demtui.plugins.attacks.lavan import craft_lavan

    _check_target(data, target)
    with ctx.autocast():
        patch = craft_lavan(model, data.x, target, area=params["area"], size=params["size"],
                            location=params["location"], top=params["top"], left=params["left"],
                            iterations=params["iterations"], lr=params["lr"], beta=params["beta"],
                            batch_size=params["batch_size"], **_common(ctx, target))
    ctx.check_cancelled()
    return patch


def gap(model: nn.Module, data: AttackData, target: int | None, params: dict[str, Any], ctx: Any) -> AdditivePerturbation:
    """GAP, universal mode: a generator's output for a fixed noise input, scaled to ε."""
    from demtui.plugins.attacks.gap import craft_gap

    _check_target(data, target)
    with ctx.autocast():
        delta = craft_gap(model, data.x, target, eps=params["eps"], train_steps=params["train_steps"],
                          lr=params["lr"], beta1=params["beta1"], width=params["width"], blocks=params["blocks"],
                          batch_size=params["batch_size"], **_common(ctx, target))
    ctx.check_cancelled()
    return AdditivePerturbation(delta, params["eps"])


def deepfool_uap(model: nn.Module, data: AttackData, target: int | None, params: dict[str, Any],
                 ctx: Any) -> AdditivePerturbation:
    """The original UAP: DeepFool per image, fooling-rate stopping rule, bounded passes.

    Runs in float32 even on CUDA: DeepFool's linearised step needs exact gradients.
    """
    from demtui.plugins.attacks.deepfool_uap import craft_deepfool_uap

    _check_target(data, target)
    delta, info = craft_deepfool_uap(model, data.x, target, eps=params["eps"],
                                     fooling_target=params["fooling_target"], max_passes=params["max_passes"],
                                     max_iter=params["max_iter"], overshoot=params["overshoot"],
                                     candidates=params["candidates"], **_common(ctx, target))
    ctx.check_cancelled()
    if info["rate"] < params["fooling_target"]:
        ctx.log(f"UAP stopped after {info['passes']} pass(es) at a crafting-set rate of {info['rate']:.3f}, "
                f"below the target {params['fooling_target']:.2f} (max_passes reached).", level="warning")
    return AdditivePerturbation(delta, params["eps"])
