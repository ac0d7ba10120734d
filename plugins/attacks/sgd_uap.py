"""sPGD / SGD-UAP (Shafahi et al. 2020; Mummadi et al. 2019): sign steps on a batch-mean gradient.

Each step takes a batch of crafting images, computes the gradient of the clipped
cross-entropy mean(min(CE, β)) with respect to the one shared δ — the gradient of the
batch mean, i.e. the mean of the per-image gradients — and moves δ by step·ε·sign(g):
up the loss (non-targeted, away from the clean prediction) or down the target's CE
(targeted). δ is projected onto the ε-ball after every step and x+δ onto [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from demtui.plugins.attacks.common import (Progress, Stop, as_float, attack_labels, clipped_ce, epoch_batches,
                                           eval_mode, report, stopped)


def loss_grad(model: nn.Module, delta: torch.Tensor, xb: torch.Tensor, labels: torch.Tensor, *, beta: float,
              targeted: bool) -> tuple[torch.Tensor, float]:
    """∇_δ of the objective to ascend (see ``clipped_ce``) on float images ``xb``; δ is (1, C, H, W)."""
    d = delta.detach().requires_grad_(True)
    logits = model((xb + d).clamp(0, 1))
    loss = clipped_ce(logits, labels, beta=beta, targeted=targeted)
    (grad,) = torch.autograd.grad(loss, d)
    return grad.float(), float(loss.detach())


def craft_sgd_uap(
    model: nn.Module,
    x: torch.Tensor,
    target: int | None,
    *,
    eps: float,
    epochs: int = 10,
    step: float = 0.8,
    beta: float = 12.0,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    should_stop: Stop | None = None,
) -> torch.Tensor:
    """Return δ (1×C×H×W, float32 on CPU, ‖δ‖∞ ≤ eps) from uint8 crafting images ``x``.

    ``step`` is the sign-step size as a fraction of ε (the public reference uses 0.6–0.8).
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x = x.to(device)
    n = x.shape[0]
    with eval_mode(model):
        labels = attack_labels(model, x, target)
        delta = torch.zeros((1, *x.shape[1:]), device=device)
        total = epochs * math.ceil(n / batch_size)
        done = 0
        for _ in range(epochs):
            for idx in epoch_batches(n, batch_size, g, device):
                grad, loss = loss_grad(model, delta, as_float(x[idx]), labels[idx], beta=beta,
                                       targeted=target is not None)
                delta = (delta + step * eps * grad.sign()).clamp(-eps, eps)
                done += 1
                report(progress, done, total, 10, {"loss": loss})
                if stopped(should_stop):
                    return delta.cpu()
    return delta.cpu()
