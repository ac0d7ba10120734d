"""Chores every attack shares: labels to attack, the clipped CE loss, batching, seeds.

Kept here so each attack module holds only its own inner loop (the torchattacks habit).
Images arrive as uint8 (N, C, H, W) on the run's device; attacks work on floats in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from demtui.evaluation import as_float  # re-exported: attacks import it from here

Progress = Callable[[int, int, dict[str, Any] | None], None]
Stop = Callable[[], bool]



@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, delta: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
    """Logits (N, K) in float32 for uint8 or float images (plus δ, clamped to [0, 1]), in batches."""
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = as_float(x[i:i + batch_size])
        out.append(model(xb if delta is None else (xb + delta).clamp(0, 1)).float())
    return torch.cat(out)


def attack_labels(model: nn.Module, x: torch.Tensor, target: int | None) -> torch.Tensor:
    """What each sample's loss is about: the target class, or the clean prediction (non-targeted)."""
    if target is not None:
        return torch.full((x.shape[0],), int(target), dtype=torch.long, device=x.device)
    return predict(model, x).argmax(1)


def clipped_ce(logits: torch.Tensor, labels: torch.Tensor, *, beta: float, targeted: bool) -> torch.Tensor:
    """sPGD's objective to *ascend*: mean(min(CE, β)), negated for a target (Mummadi et al. 2019).

    Clipping at β stops samples already far across the boundary (non-targeted) or
    hopelessly far from the target (targeted) from taking the whole step.
    """
    ce = F.cross_entropy(logits.float(), labels, reduction="none").clamp(max=beta)
    return -ce.mean() if targeted else ce.mean()


def sample_batch(n: int, size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Indices of a batch drawn without replacement (CPU generator: reproducible on any device)."""
    return torch.randperm(n, generator=generator)[: min(size, n)].to(device)


def epoch_batches(n: int, size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """A shuffled pass over n samples in batches of ``size`` (the last one may be smaller)."""
    order = torch.randperm(n, generator=generator).to(device)
    return [order[i:i + size] for i in range(0, n, size)]


def report(progress: Progress | None, done: int, total: int, every: int, info: dict[str, Any]) -> None:
    if progress is not None and (done % every == 0 or done == total):
        progress(done, total, info)


def stopped(should_stop: Stop | None) -> bool:
    return bool(should_stop and should_stop())


class eval_mode:
    """Keep the victim in eval mode with frozen weights for the attack, then restore it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.training = self.model.training
        self.grads = [p.requires_grad for p in self.model.parameters()]
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc: Any) -> None:
        for p, g in zip(self.model.parameters(), self.grads):
            p.requires_grad_(g)
        self.model.train(self.training)
