"""Heavy helpers of the public API that glue the project's own loops to the plugin contract.

:func:`train_defense` is how a third-party *training* defense becomes just a batch loss:
the clean repair subset, SGD with momentum, the schedule, the optional clean refinement,
BatchNorm handling, progress, cancellation and the collapse check are the same loop
Democratic Training and every built-in baseline use (``demtui.plugins.defenses.finetune``),
so a comparison table compares losses, not training loops.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from demtui.contracts import DefenseData, DefenseResult

#: The loop's knobs a defense may declare (``demtui.api.training_params()`` declares them all).
LOOP_PARAMS = ("epochs", "lr", "momentum", "weight_decay", "batch_size", "bn_mode", "refine_epochs", "refine_lr",
               "schedule", "collapse_check")


def loop_options(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """The fine-tuning loop's keyword arguments from a defense's params and the run context."""
    knobs = {k: params[k] for k in LOOP_PARAMS if k in params}
    return {**knobs, "device": ctx.device, "seed": ctx.seed, "progress": ctx.progress, "should_stop": ctx.should_stop}


def train_defense(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any, batch_loss: Any, *,
                  name: str, **overrides: Any) -> DefenseResult:
    """Fine-tune ``model`` (the engine's copy) on the repair subset with ``batch_loss``; a DefenseResult.

    ``batch_loss(x, y) -> (loss, info)`` gets float images in [0, 1] and labels of one batch
    and returns the scalar loss to minimise and a dict of per-batch means to log (may be
    empty). Loop settings come from ``params`` (declare them with
    ``demtui.api.training_params()``); ``overrides`` passes anything else the loop takes
    (``parameters=``, ``collapse_rule=`` …). Runs under the context's autocast.
    """
    from demtui.errors import SpecError
    from demtui.plugins.defenses.finetune import finetune

    if data.x.shape[0] == 0:
        raise SpecError(f"Defense '{name}' trains on the repair subset but got no images; declare "
                        "demtui.api.subset_params() in its params.")
    options = {**loop_options(params, ctx), **overrides}
    missing = [k for k in ("epochs", "lr") if k not in options]
    if missing:
        raise SpecError(f"Defense '{name}' uses demtui's training loop but declares no {' or '.join(missing)} "
                        "parameter; add demtui.api.training_params() to its params.")
    with ctx.autocast():
        history = finetune(model, data.x, data.y, batch_loss, name=name, **options)
    ctx.check_cancelled()
    return DefenseResult(model=model.eval(), history=history)
