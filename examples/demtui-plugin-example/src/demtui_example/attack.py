"""A targeted FGSM-style UAP: the simplest universal attack that still works."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from demtui.api import AdditivePerturbation, AttackData, ParamError, as_float, eval_mode, project_linf, sample_batch


def fgsm_uap(model: torch.nn.Module, data: AttackData, target: int | None, params: dict[str, Any],
             ctx: Any) -> AdditivePerturbation:
    """δ ← Π_ε(δ − s·sign(mean ∇ CE(x+δ, t))) for a target; ascent on CE(true label) without one."""
    if target is not None and not 0 <= target < data.num_classes:
        raise ParamError(f"Target class {target} does not exist; the model has classes 0–{data.num_classes - 1}.")
    eps, steps, size = params["eps"], params["iterations"], params["batch_size"]
    g = torch.Generator().manual_seed(ctx.seed)
    delta = torch.zeros((1, *data.x.shape[1:]), device=ctx.device)
    with eval_mode(model):
        for it in range(steps):
            idx = sample_batch(data.x.shape[0], size, g, data.x.device)
            xb = as_float(data.x[idx])
            delta.requires_grad_(True)
            logits = model((xb + delta).clamp(0, 1))
            if target is None:
                loss = -F.cross_entropy(logits, data.y[idx])
            else:
                loss = F.cross_entropy(logits, torch.full_like(data.y[idx], target))
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = project_linf(delta - params["step_size"] * grad.sign(), eps)
            ctx.progress(it + 1, steps, {"loss": float(loss.detach())})
            if ctx.should_stop():
                break
    return AdditivePerturbation(delta.detach().cpu(), eps)
