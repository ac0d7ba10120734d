"""Standard supervised training for victims (``demtui train`` and the quickstart).

SGD with Nesterov momentum and a one-cycle schedule: a recipe that trains the small
offline CNN in seconds and scales to the paper's WRN/CIFAR setting. Uniform sign-noise
augmentation (``noise_eps``) is on by default because an un-augmented small CNN can be
so brittle that *random* noise of the attack budget flips most inputs to one class,
which would make UAP success meaningless.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def augment(x: torch.Tensor, *, noise_eps: float, flip: bool, pad: int, g: torch.Generator | None) -> torch.Tensor:
    """Random flips, translation by up to ``pad`` pixels, and ±u sign noise with u ~ U(0, noise_eps)."""
    n = x.shape[0]
    dev = x.device
    if flip:
        mask = torch.rand(n, generator=g).to(dev) < 0.5
        x = torch.where(mask.view(n, 1, 1, 1), x.flip(3), x)
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        shifts = torch.randint(0, 2 * pad + 1, (2,), generator=g).tolist()  # one shift per batch: cheap
        x = padded[:, :, shifts[0]:shifts[0] + x.shape[2], shifts[1]:shifts[1] + x.shape[3]]
    if noise_eps > 0:
        scale = torch.rand(n, 1, 1, 1, generator=g).to(dev) * noise_eps
        signs = torch.randint(0, 2, x.shape, generator=g).to(dev, x.dtype) * 2 - 1
        x = (x + scale * signs).clamp(0, 1)
    return x


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 30,
    lr: float = 0.05,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    noise_eps: float = 16 / 255,
    flip: bool = True,
    pad: int = 2,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on uint8 images ``x``; returns a history for the run record."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x, y = x.to(device), y.to(device)
    n = x.shape[0]
    steps_per_epoch = max(1, (n + batch_size - 1) // batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if total > 4:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.25)
    else:  # too few steps for a warm-up phase (OneCycleLR divides by its length): a constant rate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    model.train()
    start = time.perf_counter()
    step, loss_sum, correct, seen = 0, 0.0, 0, 0
    history: dict[str, Any] = {"epochs": epochs, "loss": []}
    for epoch in range(epochs):
        order = torch.randperm(n, generator=g).to(device)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb = augment(x[idx].float().div_(255), noise_eps=noise_eps, flip=flip, pad=pad, g=g)
            logits = model(xb)
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
            seen += len(idx)
            if progress:
                progress(step, total, {"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": correct / seen})
            if should_stop and should_stop():
                model.eval()
                history["stopped"] = True
                return history
        history["loss"].append(round(loss_sum / max(seen, 1), 4))
    model.eval()
    history.update(train_acc=correct / max(seen, 1), final_loss=loss_sum / max(seen, 1),
                   seconds=time.perf_counter() - start, samples_per_s=total * batch_size / (time.perf_counter() - start))
    return history
