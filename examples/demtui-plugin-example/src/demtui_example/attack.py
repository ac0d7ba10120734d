"""A targeted FGSM-style UAP: the simplest universal attack that still works."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from demtui.errors import ParamError
from demtui.perturbation import AdditivePerturbation


def fgsm_uap(model: torch.nn.Module, data: Any, target: int | None, params: dict[str, Any], ctx: Any) -> AdditivePerturbation:
    """δ ← clip(δ − s·sign(mean ∇ CE(x+δ, t))) for targets, ascent on CE(true label) without one."""
    if target is not None and not 0 <= target < data.num_classes:
        raise ParamError(f"Target class {target} does not exist; the model has classes 0–{data.num_classes - 1}.")
    eps, steps, size = params["eps"], params["iterations"], params["batch_size"]
    g = torch.Generator().manual_seed(ctx.seed)
    model.eval()
    delta = torch.zeros((1, *data.x.shape[1:]), device=ctx.device)
    for it in range(steps):
        idx = torch.randint(0, data.x.shape[0], (min(size, data.x.shape[0]),), generator=g).to(data.x.device)
        xb = data.x[idx].float() / 255
        delta.requires_grad_(True)
        logits = model((xb + delta).clamp(0, 1))
        if target is None:
            loss = -F.cross_entropy(logits, data.y[idx])
        else:
            loss = F.cross_entropy(logits, torch.full_like(data.y[idx], target))
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = (delta - params["step_size"] * grad.sign()).clamp(-eps, eps)
        ctx.progress(it + 1, steps, {"loss": float(loss.detach())})
        if ctx.should_stop():
            break
    return AdditivePerturbation(delta.detach().cpu(), eps)
