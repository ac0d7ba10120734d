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

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from demtui.entropy import LayerTap, tap
from demtui.errors import CollapseError


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


def _set_mode(model: nn.Module, bn_mode: str) -> None:
    """Train mode, optionally with BatchNorm frozen (eval statistics, no running updates)."""
    model.train()
    if bn_mode == "eval":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


@torch.no_grad()
def _probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Clean accuracy and the largest predicted-class share on a fixed slice (eval mode)."""
    was = model.training
    model.eval()
    pred = torch.cat([model(x[i:i + 256].float() / 255).argmax(1) for i in range(0, len(x), 256)])
    model.train(was)
    share = torch.bincount(pred, minlength=num_classes).max().item() / len(pred)
    return {"acc": float((pred == y).float().mean()), "top_share": share}


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
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Repair ``model`` in place on the clean subset (uint8 ``x``); returns the history."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x, y = x.to(device), y.to(device)
    n = x.shape[0]
    num_classes = int(y.max()) + 1
    probe_x, probe_y = x[: min(n, 512)], y[: min(n, 512)]
    before = _probe(model, probe_x, probe_y, num_classes)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total = (epochs + refine_epochs) * steps_per_epoch
    history: dict[str, Any] = {"epochs": [], "probe_before": before, "samples": n}
    done = 0
    start = time.perf_counter()

    def run_stage(stage_epochs: int, stage_lr: float, with_generator: bool, name: str) -> bool:
        nonlocal done
        opt = torch.optim.SGD(model.parameters(), lr=stage_lr, momentum=momentum, weight_decay=weight_decay)
        stage_steps = max(1, stage_epochs * steps_per_epoch)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=stage_steps)
                 if schedule == "cosine" and with_generator else None)
        with tap(model, layer_name) as layer:
            for epoch in range(stage_epochs):
                _set_mode(model, bn_mode)
                order = torch.randperm(n, generator=g).to(device)
                sums = {"loss": 0.0, "h_clean": 0.0, "h_low": 0.0}
                t0 = time.perf_counter()
                for i in range(0, n, batch_size):
                    idx = order[i:i + batch_size]
                    xb, yb = x[idx].float() / 255, y[idx]
                    if with_generator:
                        x_en = generate_low_entropy(model, xb, layer, eps=eps, steps=steps, step_size=step_size,
                                                    random_start=random_start, generator=g)
                        logits = model(torch.cat([x_en, xb]))
                        h = layer.entropy().detach()
                        low, clean = logits[: len(idx)], logits[len(idx):]
                        loss = alpha * F.cross_entropy(low, yb) + (1 - alpha) * F.cross_entropy(clean, yb)
                        sums["h_low"] += float(h[: len(idx)].sum())
                        sums["h_clean"] += float(h[len(idx):].sum())
                    else:
                        loss = F.cross_entropy(model(xb), yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    sums["loss"] += float(loss.detach()) * len(idx)
                    done += 1
                    if progress:
                        progress(done, total, {"stage": name, "epoch": epoch + 1, "loss": float(loss.detach())})
                    if should_stop and should_stop():
                        return False
                probe = _probe(model, probe_x, probe_y, num_classes)
                record = {"stage": name, "epoch": epoch + 1, "loss": round(sums["loss"] / n, 4),
                          "probe_acc": round(probe["acc"], 4), "top_share": round(probe["top_share"], 4),
                          "seconds": round(time.perf_counter() - t0, 2)}
                if with_generator:
                    record.update(h_clean=round(sums["h_clean"] / n, 4), h_low=round(sums["h_low"] / n, 4))
                history["epochs"].append(record)
                if collapse_check and _collapsed(before, probe, num_classes):
                    model.eval()
                    raise CollapseError(
                        f"Democratic Training collapsed the model at {name} epoch {epoch + 1}: "
                        f"{probe['top_share']:.0%} of inputs go to one class and clean accuracy fell to "
                        f"{probe['acc']:.2f}; lower defense.lr or keep defense.bn_mode=train.")
        return True

    finished = run_stage(epochs, lr, True, "repair") and run_stage(refine_epochs, refine_lr, False, "refine")
    model.eval()
    seconds = time.perf_counter() - start
    history.update(stopped=not finished, seconds=round(seconds, 2),
                   samples_per_s=round(done * batch_size / seconds, 1) if seconds > 0 else None,
                   probe_after=_probe(model, probe_x, probe_y, num_classes))
    return history


def _collapsed(before: dict[str, float], now: dict[str, float], num_classes: int) -> bool:
    """Most inputs on one class *and* accuracy near chance, where it was not before."""
    chance = 1.0 / max(num_classes, 2)
    return (num_classes > 2 and now["top_share"] > 0.8 and now["acc"] < max(2 * chance, before["acc"] / 2))
