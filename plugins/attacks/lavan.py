"""LaVAN (Karmon, Zoran & Goldberg 2018): a localized, visible, universal patch.

A small square patch (the paper: about 2% of the image) replaces the pixels under it;
its values are free in [0, 1] (no L∞ budget — the constraint is where, not how much).
Targeted loss per image: CE(target) − CE(source), i.e. pull toward the target and push
away from the image's own (clean-predicted) class; non-targeted: ascend the clipped CE
of the clean prediction. Each step moves the patch against the batch-mean gradient
normalised to unit L∞ (the paper's raw-gradient steps with a step size in pixel units).
With a random location the patch is pasted at a fresh place in every image of every
batch, so it learns to work anywhere (and is evaluated at random places too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from demtui.plugins.attacks.common import (Progress, Stop, as_float, eval_mode, predict, report, sample_batch,
                                           stopped)
from demtui.plugins.attacks.patch import PatchPerturbation, check_location, paste, patch_side, random_places


def lavan_loss(logits: torch.Tensor, source: torch.Tensor, target: int | None, beta: float) -> torch.Tensor:
    """The loss to *minimise* (see module doc)."""
    logits = logits.float()
    if target is None:
        return -F.cross_entropy(logits, source, reduction="none").clamp(max=beta).mean()
    to_target = F.cross_entropy(logits, torch.full_like(source, target), reduction="none")
    return (to_target - F.cross_entropy(logits, source, reduction="none")).mean()


def craft_lavan(
    model: nn.Module,
    x: torch.Tensor,
    target: int | None,
    *,
    area: float = 0.02,
    size: int | None = None,
    location: str = "fixed",
    top: int | None = None,
    left: int | None = None,
    iterations: int = 500,
    lr: float = 0.05,
    beta: float = 12.0,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    should_stop: Stop | None = None,
) -> PatchPerturbation:
    """Return a PatchPerturbation crafted on uint8 images ``x`` (N, C, H, W).

    A fixed patch defaults to the image centre; ``top``/``left`` place it elsewhere. (On the
    offline shapes data the corners are clutter the victim ignores: a 2% corner patch
    reaches SR ≈ 0 there, a centred one ≈ 0.2; see docs/attacks.md.)
    """
    device = torch.device(device)
    hw = (int(x.shape[-2]), int(x.shape[-1]))
    side = patch_side(hw, area, size)
    if location == "random":
        top = left = None
    else:
        top = (hw[0] - side) // 2 if top is None else top
        left = (hw[1] - side) // 2 if left is None else left
        check_location(hw, side, top, left)
    g = torch.Generator().manual_seed(seed)
    x = x.to(device)
    n = x.shape[0]
    patch = torch.rand((x.shape[1], side, side), generator=g).to(device)
    mask = torch.ones((1, side, side), device=device)
    with eval_mode(model):
        source = predict(model, x).argmax(1)
        for it in range(iterations):
            idx = sample_batch(n, batch_size, g, device)
            if top is None:
                tops, lefts = random_places(idx.numel(), hw, (side, side), g)
            else:
                tops, lefts = torch.full((idx.numel(),), top), torch.full((idx.numel(),), left)
            p = patch.detach().requires_grad_(True)
            logits = model(paste(as_float(x[idx]), p, mask, tops, lefts))
            loss = lavan_loss(logits, source[idx], target, beta)
            (grad,) = torch.autograd.grad(loss, p)
            grad = grad.float()
            patch = (patch - lr * grad / grad.abs().amax().clamp_min(1e-12)).clamp(0, 1)
            report(progress, it + 1, iterations, 10, {"loss": float(loss.detach())})
            if stopped(should_stop):
                break
    return PatchPerturbation(patch.cpu(), mask.cpu(), hw, top, left, seed=seed)
