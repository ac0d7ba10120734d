"""Adversarial-training baselines of the paper's Table 4, on Democratic Training's budget.

- ``pgd-at``: non-targeted on-the-fly PGD (Madry et al. 2018): m signed steps raising
  CE(x+δ, y), δ ∈ [−ε, ε], x+δ ∈ [0, 1].
- ``pgd-at-targeted``: the same PGD *lowering* CE(x+δ, t) toward a target class t.
- ``uap-at``: fine-tuning with *known* UAPs, each added to a clean sample with
  probability p.

All three train on α·CE(perturbed) + (1−α)·CE(clean) with the shared loop of
``finetune.py`` (SGD, batch, epochs, refinement, BatchNorm mode, collapse check), so
the only difference from Democratic Training is where the perturbed samples come from.

Known UAPs are crafted *inside* the defense with DF-UAP (``plugins/attacks/df_uap.py``)
on the repair subset against the original model, with seeds of their own. The run's
evaluation UAPs — crafted on other images by the attack stage — never reach a defense,
as the paper keeps them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from demtui.plugins.defenses.finetune import BatchLoss, finetune, mixed_loss, paired_forward


def pgd_perturb(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float | None = None,
    random_start: bool = True,
    target: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L∞ PGD: raise CE(x+δ, y), or lower CE(x+δ, target) when ``target`` (N,) is given.

    ``x`` is float in [0, 1]; only δ receives gradients; the model's mode is the caller's.
    Step size defaults to ε/4, as Democratic Training's generator, so m means the same.
    """
    step = eps / 4 if step_size is None else step_size
    if random_start:
        delta = (torch.rand(x.shape, generator=generator).to(x.device, x.dtype) * 2 - 1) * eps
    else:
        delta = torch.zeros_like(x)
    delta = (x + delta).clamp(0, 1) - x
    sign = -1.0 if target is not None else 1.0
    labels = target if target is not None else y
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta).float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = (delta + sign * step * grad.sign()).clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def pgd_loss(model: nn.Module, *, eps: float, steps: int, step_size: float | None, random_start: bool,
             alpha: float, targets: Sequence[int] = (), generator: torch.Generator) -> BatchLoss:
    """One batch of (targeted) PGD adversarial training; targets are drawn per sample."""
    pool = torch.tensor(list(targets), dtype=torch.long) if targets else None

    def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        t = None
        if pool is not None:
            t = pool[torch.randint(0, len(pool), (len(yb),), generator=generator)].to(yb.device)
        x_adv = pgd_perturb(model, xb, yb, eps=eps, steps=steps, step_size=step_size,
                            random_start=random_start, target=t, generator=generator)
        adv, clean = paired_forward(model, x_adv, xb)
        hit = (adv.argmax(1) == (t if t is not None else yb)).float().mean()
        key = "adv_target_rate" if t is not None else "adv_acc"
        return mixed_loss(adv, clean, yb, alpha), {key: float(hit)}

    return loss_fn


def uap_loss(model: nn.Module, uaps: torch.Tensor, *, p: float, alpha: float, generator: torch.Generator) -> BatchLoss:
    """One batch of known-UAP training: each sample gets a random known UAP with probability p."""

    def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        n = len(yb)
        pick = torch.randint(0, len(uaps), (n,), generator=generator)
        use = (torch.rand(n, generator=generator) < p).float().view(n, 1, 1, 1)
        delta = uaps[pick].to(xb.device, xb.dtype) * use.to(xb.device, xb.dtype)
        x_adv = (xb + delta).clamp(0, 1)
        adv, clean = paired_forward(model, x_adv, xb)
        return mixed_loss(adv, clean, yb, alpha), {"adv_acc": float((adv.argmax(1) == yb).float().mean())}

    return loss_fn


def craft_known_uaps(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    targets: Sequence[int | None],
    *,
    per_target: int = 1,
    eps: float = 10 / 255,
    iterations: int = 1000,
    lr: float = 0.005,
    kappa: float = 10.0,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
) -> torch.Tensor:
    """DF-UAPs against ``model`` on the repair subset: (len(targets)·per_target, C, H, W).

    Seeds are offset from the run seed so they never coincide with the attack stage's.
    """
    from demtui.plugins.attacks.df_uap import craft_df_uap

    jobs = [(t, k) for t in targets for k in range(per_target)]
    out = []
    for i, (t, _) in enumerate(jobs):
        delta = craft_df_uap(model, x, y, t, eps=eps, iterations=iterations, lr=lr, kappa=kappa,
                             batch_size=batch_size, seed=seed * 1000 + 501 + i, device=device)
        out.append(delta[0])
        if progress:
            progress(i + 1, len(jobs), {"stage": "known-uaps", "target": "none" if t is None else t})
    return torch.stack(out)


def uap_targets(explicit: Sequence[int], run_targets: Sequence[int]) -> list[int | None]:
    """Which classes the known UAPs aim at: the param, else the run's targets, else non-targeted."""
    chosen = list(explicit) or list(run_targets)
    return list(chosen) if chosen else [None]


def adversarial_training(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    targets: Sequence[int] = (),
    eps: float = 10 / 255,
    steps: int = 5,
    step_size: float | None = None,
    random_start: bool = True,
    alpha: float = 0.9,
    seed: int = 0,
    **loop: Any,
) -> dict[str, Any]:
    """PGD adversarial training (``targets`` empty: non-targeted) with the shared loop."""
    g = torch.Generator().manual_seed(seed + 17)
    loss = pgd_loss(model, eps=eps, steps=steps, step_size=step_size, random_start=random_start,
                    alpha=alpha, targets=targets, generator=g)
    name = "pgd-at-targeted" if targets else "pgd-at"
    history = finetune(model, x, y, loss, name=name, seed=seed, **loop)
    history.update(eps=eps, steps=steps, targets=list(targets))
    return history


def known_uap_training(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    uaps: torch.Tensor,
    *,
    p: float = 0.5,
    alpha: float = 0.9,
    seed: int = 0,
    **loop: Any,
) -> dict[str, Any]:
    """Fine-tune with precomputed UAPs (K, C, H, W) added with probability ``p``."""
    g = torch.Generator().manual_seed(seed + 23)
    loss = uap_loss(model, uaps, p=p, alpha=alpha, generator=g)
    history = finetune(model, x, y, loss, name="uap-at", seed=seed, **loop)
    history.update(known_uaps=int(len(uaps)), p=p)
    return history
