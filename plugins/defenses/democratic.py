"""Democratic Training (Sun, Sun & Zhao, ICLR 2025): Algorithms 1 and 2.

Alg. 2, the Sample Generator, pushes each clean image inside an ε-ball toward *low*
layer entropy (the signature UAPs leave), needing no UAP and no target. Alg. 1
fine-tunes on α·CE(low-entropy) + (1−α)·CE(clean) so the model keeps its decision when
a few features dominate. A clean-only refinement stage follows, as in the authors' code.

Engineering choices (measured in docs/method.md):
- ``bn_mode="train"`` keeps BatchNorm on batch statistics during generation *and*
  training, as the authors' code does; frozen statistics let the generator exploit
  features the update cannot move, and repairs far less.
- Clean and low-entropy halves go through the model in one forward pass (one set of
  batch statistics, half the kernel launches).
- A collapse check stops the stage with a message if the model starts mapping most
  inputs to one class, the failure mode of entropy minimisation plus CE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from demtui.entropy import LayerTap, tap
from demtui.plugins.defenses.finetune import collapsed, finetune, mixed_loss, paired_forward


def generate_low_entropy(
    model: nn.Module,
    x: torch.Tensor,
    layer: LayerTap,
    *,
    eps: float,
    steps: int,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Alg. 2: m signed-gradient steps lowering H_l, δ kept in [−ε, ε] and x+δ in [0, 1].

    ``x`` is float in [0, 1]. Only δ receives gradients; the model's mode is the caller's.
    """
    step = eps / 4 if step_size is None else step_size
    if random_start:
        noise = torch.rand(x.shape, generator=generator).to(x.device, x.dtype)
        delta = (noise * 2 - 1) * eps
    else:
        delta = torch.zeros_like(x)
    delta = ((x + delta).clamp(0, 1) - x)
    for _ in range(steps):
        delta.requires_grad_(True)
        model(x + delta)
        h = layer.entropy().sum()  # sum: per-sample gradients, independent of batch size
        (grad,) = torch.autograd.grad(h, delta)
        with torch.no_grad():
            delta = (delta - step * grad.sign()).clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def democratic_training(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    layer_name: str,
    eps: float = 10 / 255,
    steps: int = 5,
    step_size: float | None = None,
    random_start: bool = True,
    alpha: float = 0.9,
    epochs: int = 50,
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    bn_mode: str = "train",
    refine_epochs: int = 10,
    refine_lr: float = 1e-5,
    schedule: str = "constant",
    collapse_check: bool = True,
    epoch_samples: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Repair ``model`` in place on the clean subset (uint8 ``x``); returns the history.

    Alg. 1 is a batch loss for the shared fine-tuning loop (``finetune``): the same loop,
    schedule, refinement stage and collapse check as every training baseline.
    ``epoch_samples`` (stream mode) makes each epoch a fresh shuffled draw of that many
    images from ``x`` (the whole training split) instead of a pass over all of ``x``.
    """
    g = torch.Generator().manual_seed(seed)

    def batch_loss(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x_en = generate_low_entropy(model, xb, layer, eps=eps, steps=steps, step_size=step_size,
                                    random_start=random_start, generator=g)
        low, clean = paired_forward(model, x_en, xb)
        h = layer.entropy().detach()
        loss = mixed_loss(low, clean, yb, alpha)
        return loss, {"h_low": float(h[: len(yb)].mean()), "h_clean": float(h[len(yb):].mean())}

    with tap(model, layer_name) as layer:
        return finetune(model, x, y, batch_loss, name="Democratic Training", epochs=epochs, lr=lr,
                        momentum=momentum, weight_decay=weight_decay, batch_size=batch_size, bn_mode=bn_mode,
                        refine_epochs=refine_epochs, refine_lr=refine_lr, schedule=schedule,
                        collapse_check=collapse_check, collapse_rule=collapsed, epoch_samples=epoch_samples,
                        collapse_hint="lower defense.lr or keep defense.bn_mode=train", generator=g, device=device,
                        progress=progress, should_stop=should_stop)
