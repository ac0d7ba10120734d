"""Adapters from the attack contract to the algorithm modules (heavy: imports torch)."""

from __future__ import annotations

from typing import Any

from torch import nn

from demtui.contracts import AttackData
from demtui.errors import SpecError
from demtui.perturbation import AdditivePerturbation


def df_uap(model: nn.Module, data: AttackData, target: int | None, params: dict[str, Any], ctx: Any) -> AdditivePerturbation:
    """DF-UAP (targeted or not; ρ > 0 makes it the entropy-aware adaptive attack of Eq. 11)."""
    from demtui.plugins.attacks.df_uap import craft_df_uap

    if target is not None and not 0 <= target < data.num_classes:
        raise SpecError(f"Target class {target} does not exist; the model has classes 0–{data.num_classes - 1}.")
    with ctx.autocast():
        delta = craft_df_uap(
            model, data.x, data.y, target, eps=params["eps"], iterations=params["iterations"], lr=params["lr"],
            kappa=params["kappa"], batch_size=params["batch_size"], seed=ctx.seed + (target or 0),
            device=ctx.device, entropy_layer=data.layer if params.get("rho", 0) > 0 else None,
            rho=params.get("rho", 0.0), progress=ctx.progress, should_stop=ctx.should_stop,
        )
    ctx.check_cancelled()
    return AdditivePerturbation(delta, params["eps"])
