"""Adapters from the defense contract to the training modules (heavy: imports torch)."""

from __future__ import annotations

from typing import Any

from torch import nn

from demtui.contracts import DefenseData, DefenseResult


def democratic(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """Democratic Training (Alg. 1 with the Alg. 2 sample generator) on the clean subset."""
    from demtui.plugins.defenses.democratic import democratic_training

    knobs = {k: v for k, v in params.items() if k not in ("layer", "subset_fraction", "subset_size")}
    with ctx.autocast():
        history = democratic_training(model, data.x, data.y, layer_name=data.layer, **knobs, seed=ctx.seed,
                                      device=ctx.device, progress=ctx.progress, should_stop=ctx.should_stop)
    ctx.check_cancelled()
    return DefenseResult(model=model.eval(), history=history)
