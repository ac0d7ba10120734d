"""SGA: Stochastic Gradient Aggregation (Liu et al., ICCV 2023).

Plain sPGD takes one sign step per batch, so its direction is as noisy as one batch's
gradient and it over-fits small batches. SGA splits each large outer batch into small
minibatches and runs K·⌈B/m⌉ inner sign steps of size ``inner_step``·ε on a *copy* of δ,
one per random minibatch, collecting every inner gradient on the way. The outer step
then moves the real δ by ``outer_step``·ε along the sign of the *aggregated* (mean)
inner gradient: a direction averaged over many local views, which generalises better.
Loss: the clipped cross-entropy of sPGD (targeted: toward the target; else away from
the clean prediction). δ stays in the ε-ball after every step; x+δ in [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from demtui.plugins.attacks.common import (Progress, Stop, as_float, attack_labels, epoch_batches, eval_mode, report,
                                           sample_batch, stopped)
from demtui.plugins.attacks.sgd_uap import loss_grad


def craft_sga(
    model: nn.Module,
    x: torch.Tensor,
    target: int | None,
    *,
    eps: float,
    epochs: int = 10,
    outer_batch: int = 250,
    minibatch: int = 10,
    inner_steps: int = 4,
    inner_step: float = 0.1,
    outer_step: float = 0.1,
    beta: float = 9.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    should_stop: Stop | None = None,
) -> torch.Tensor:
    """Return δ (1×C×H×W, float32 on CPU, ‖δ‖∞ ≤ eps) from uint8 crafting images ``x``.

    ``inner_steps`` is K: each outer batch of B images gets K·⌈B/minibatch⌉ inner steps.
    Step sizes are fractions of ε (the reference uses 0.1 for both).
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x = x.to(device)
    n = x.shape[0]
    targeted = target is not None
    with eval_mode(model):
        labels = attack_labels(model, x, target)
        delta = torch.zeros((1, *x.shape[1:]), device=device)
        total = epochs * math.ceil(n / outer_batch)
        done = 0
        for _ in range(epochs):
            for idx in epoch_batches(n, outer_batch, g, device):
                xb, lb = as_float(x[idx]), labels[idx]
                inner = delta.clone()
                aggregate = torch.zeros_like(delta)
                steps = inner_steps * math.ceil(idx.numel() / minibatch)
                loss = 0.0
                for _ in range(steps):
                    sub = sample_batch(idx.numel(), minibatch, g, device)
                    grad, loss = loss_grad(model, inner, xb[sub], lb[sub], beta=beta, targeted=targeted)
                    aggregate += grad
                    inner = (inner + inner_step * eps * grad.sign()).clamp(-eps, eps)
                delta = (delta + outer_step * eps * aggregate.sign()).clamp(-eps, eps)
                done += 1
                report(progress, done, total, 1, {"loss": loss})
                if stopped(should_stop):
                    return delta.cpu()
    return delta.cpu()
