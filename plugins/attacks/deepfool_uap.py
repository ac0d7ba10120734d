"""UAP (Moosavi-Dezfooli et al., CVPR 2017): the original universal perturbation, via DeepFool.

Passes over the crafting images in a seeded random order; for each image that v does not
yet fool, DeepFool (Moosavi-Dezfooli et al. 2016) finds the smallest extra step Δv that
sends x+v across the nearest linearised decision boundary, and v ← proj_ε(v + Δv) (L∞
ball). A pass ends with a batched fooling-rate check; the attack stops once it reaches
1 − δ (the paper's δ = 0.2, here ``fooling_target`` = 0.8) or after ``max_passes``.
Every loop is bounded: ``max_passes`` passes, ``max_iter`` DeepFool steps per image —
public ports that loop "until the fooling rate is reached" never stop when it is not.

Targeted variant (after Hirano & Takemoto 2020, who iterate a targeted per-image attack
in the same outer loop): DeepFool's step goes to the boundary between the current class
and the target instead of the nearest one; "fooled" means classified as the target and
the stopping rule uses the success rate on non-target images.

The per-image loop is what the algorithm is (v changes after every image); inside it
the gradients of all candidate classes come from one batched backward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from demtui.plugins.attacks.common import Progress, Stop, as_float, eval_mode, predict, report, stopped


def class_gradients(model: nn.Module, x: torch.Tensor, classes: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """At one image x (1,C,H,W): logits of ``classes`` (K,), their input gradients (K,C,H,W), all logits.

    The image is repeated once per class and each copy back-propagates its own logit: one
    forward/backward for all K gradients (copies are independent in eval mode).
    """
    k = classes.numel()
    xs = x.detach().expand(k, *x.shape[1:]).clone().requires_grad_(True)
    logits = model(xs).float()
    picked = logits.gather(1, classes.view(k, 1)).squeeze(1)
    (grads,) = torch.autograd.grad(picked.sum(), xs)
    return picked.detach(), grads.float(), logits[0].detach()


def deepfool(model: nn.Module, x: torch.Tensor, v: torch.Tensor, label: int, candidates: torch.Tensor, *,
             max_iter: int, overshoot: float) -> torch.Tensor:
    """Non-targeted DeepFool from clamp(x+v): Δv (1,C,H,W) off ``label``; zero if already off it.

    ``candidates`` (K,) are the classes considered, ``label`` first (DeepFool's top-K trick).
    """
    r_tot = torch.zeros_like(x)
    for _ in range(max_iter):
        f, w, logits = class_gradients(model, (x + v + (1 + overshoot) * r_tot).clamp(0, 1), candidates)
        if int(logits.argmax()) != label:
            break
        w_diff = w[1:] - w[0]  # toward each other candidate, away from the label
        norms = w_diff.flatten(1).norm(dim=1).clamp_min(1e-12)
        dist = (f[1:] - f[0]).abs() / norms  # distance to each linearised boundary
        j = int(dist.argmin())
        r_tot = r_tot + ((dist[j] + 1e-4) * w_diff[j] / norms[j]).unsqueeze(0)
    return (1 + overshoot) * r_tot


def deepfool_targeted(model: nn.Module, x: torch.Tensor, v: torch.Tensor, current: int, target: int, *,
                      max_iter: int, overshoot: float) -> torch.Tensor:
    """Targeted DeepFool: step to the linearised boundary between the current class and ``target``."""
    r_tot = torch.zeros_like(x)
    dev = x.device
    for _ in range(max_iter):
        pair = torch.tensor([current, target], device=dev)
        f, w, logits = class_gradients(model, (x + v + (1 + overshoot) * r_tot).clamp(0, 1), pair)
        now = int(logits.argmax())
        if now == target:
            break
        if now != current:  # crossed into a third class: aim from there next time
            current = now
            continue
        w_diff = w[1] - w[0]
        norm = w_diff.norm().clamp_min(1e-12)
        r_tot = r_tot + (((f[0] - f[1]).abs() / norm + 1e-4) * w_diff / norm).unsqueeze(0)
    return (1 + overshoot) * r_tot


def _success(pred: torch.Tensor, clean: torch.Tensor, target: int | None) -> float:
    """Fooling rate (non-targeted) or SR on images not already of the target class."""
    if target is None:
        return float((pred != clean).float().mean())
    keep = clean != target
    return float((pred[keep] == target).float().mean()) if bool(keep.any()) else 1.0


def craft_deepfool_uap(
    model: nn.Module,
    x: torch.Tensor,
    target: int | None,
    *,
    eps: float,
    fooling_target: float = 0.8,
    max_passes: int = 10,
    max_iter: int = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    should_stop: Stop | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Return (v, info): v is 1×C×H×W float32 on CPU with ‖v‖∞ ≤ eps; info has passes and rate."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x = x.to(device)
    n = x.shape[0]
    v = torch.zeros((1, *x.shape[1:]), device=device)
    rate, passes = 0.0, 0
    with eval_mode(model):
        clean_logits = predict(model, x)
        clean = clean_logits.argmax(1)
        k = min(int(candidates), clean_logits.shape[1])
        for passes in range(1, max_passes + 1):
            for i, j in enumerate(torch.randperm(n, generator=g).tolist()):
                v = _visit(model, as_float(x[j:j + 1]), v, clean_logits[j], target, k, eps=eps, max_iter=max_iter,
                           overshoot=overshoot)
                report(progress, (passes - 1) * n + i + 1, max_passes * n, 50, {"pass": passes, "rate": rate})
                if stopped(should_stop):
                    return v.cpu(), {"passes": passes, "rate": rate}
            rate = _success(predict(model, x, v).argmax(1), clean, target)
            if rate >= fooling_target:
                break
    return v.cpu(), {"passes": passes, "rate": rate}


def _visit(model: nn.Module, xj: torch.Tensor, v: torch.Tensor, clean_logits: torch.Tensor, target: int | None,
           k: int, *, eps: float, max_iter: int, overshoot: float) -> torch.Tensor:
    """One image of a pass: if v does not fool it yet, v ← proj_ε(v + DeepFool step)."""
    label = int(clean_logits.argmax())
    if target is not None and label == target:
        return v
    with torch.no_grad():
        now = int(model((xj + v).clamp(0, 1)).argmax(1))
    if (target is None and now != label) or (target is not None and now == target):
        return v
    if target is None:
        order = clean_logits.argsort(descending=True)
        cands = torch.cat([order[order == label], order[order != label]])[:k]
        dv = deepfool(model, xj, v, label, cands, max_iter=max_iter, overshoot=overshoot)
    else:
        dv = deepfool_targeted(model, xj, v, now, target, max_iter=max_iter, overshoot=overshoot)
    return (v + dv).clamp(-eps, eps)
