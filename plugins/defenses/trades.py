"""TRADES (Zhang et al., ICML 2019): KL-regularised robust fine-tuning.

Loss CE(f(x), y) + β·KL(f(x) ‖ f(x')), where x' maximises the same KL inside the
ε-ball: start at x + 0.001·N(0, 1), then ``steps`` signed steps of ``step_size`` on the
KL, projecting to [x−ε, x+ε] ∩ [0, 1]. As in the reference implementation the
perturbation is searched with the model in eval mode (fixed BatchNorm statistics) and
the update runs in the loop's mode. The paper's defaults: β 6, 10 steps of 0.007,
ε 0.031. Training runs through the loop every baseline shares (``finetune.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from demtui.plugins.defenses.finetune import BatchLoss, finetune, paired_forward


def trades_perturb(model: nn.Module, x: torch.Tensor, *, eps: float, steps: int, step_size: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """x' in the ε-ball around float ``x`` maximising KL(f(x) ‖ f(x')); the model is left as found."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            p_clean = F.softmax(model(x).float(), dim=1)
        noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        x_adv = (x + 0.001 * noise).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(model(x_adv).float(), dim=1), p_clean, reduction="sum")
            (grad,) = torch.autograd.grad(kl, x_adv)
            with torch.no_grad():
                x_adv = x_adv + step_size * grad.sign()
                x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    finally:
        model.train(was)
    return x_adv.detach()


def trades_loss(model: nn.Module, *, beta: float, eps: float, steps: int, step_size: float,
                generator: torch.Generator) -> BatchLoss:
    def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x_adv = trades_perturb(model, xb, eps=eps, steps=steps, step_size=step_size, generator=generator)
        adv, clean = paired_forward(model, x_adv, xb)
        natural = F.cross_entropy(clean, yb)
        robust = F.kl_div(F.log_softmax(adv.float(), dim=1), F.softmax(clean.float(), dim=1), reduction="batchmean")
        return natural + beta * robust, {"kl": float(robust.detach()),
                                         "adv_acc": float((adv.argmax(1) == yb).float().mean())}

    return loss_fn


def trades_training(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    beta: float = 6.0,
    eps: float = 0.031,
    steps: int = 10,
    step_size: float = 0.007,
    seed: int = 0,
    **loop: Any,
) -> dict[str, Any]:
    """Fine-tune ``model`` in place with the TRADES loss; returns the history."""
    g = torch.Generator().manual_seed(seed + 29)
    loss = trades_loss(model, beta=beta, eps=eps, steps=steps, step_size=step_size, generator=g)
    history = finetune(model, x, y, loss, name="trades", seed=seed, **loop)
    history.update(beta=beta, eps=eps, steps=steps)
    return history
