"""DF-UAP (Zhang et al., CVPR 2020): a universal perturbation optimised directly with Adam.

The loss is the bounded logit margin used by the paper's evaluation code: for a target
t, clamp(max_{j≠t} z_j − z_t, min=−κ), so samples already pushed κ past the boundary
stop pulling and the budget goes to the rest. Non-targeted mode uses the mirror margin
on the clean prediction. With ρ > 0 the loss becomes Eq. 11's adaptive attack,
(1−ρ)·margin − ρ·H_l(x+δ): the attacker also *raises* layer entropy to look clean to an
entropy-based defense.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from demtui.entropy import tap


def margin_loss(logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool, kappa: float) -> torch.Tensor:
    """Per-sample bounded logit margin; minimising it moves samples toward (away from) ``labels``."""
    logits = logits.float()
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf")).amax(1)
    margin = others - own if targeted else own - others
    return margin.clamp(min=-kappa)


def craft_df_uap(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: int | None,
    *,
    eps: float,
    iterations: int = 1000,
    lr: float = 0.005,
    kappa: float = 10.0,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
    entropy_layer: str | None = None,
    rho: float = 0.0,
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Return δ (1×C×H×W, float32, ‖δ‖∞ ≤ eps) crafted on uint8 images ``x``.

    The model stays in eval mode and its weights get no gradients; only δ is optimised.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x = x.to(device)
    n = x.shape[0]
    delta = torch.zeros((1, *x.shape[1:]), device=device, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    labels_all = None
    if target is None:  # non-targeted: move away from what the model predicts now
        with torch.no_grad():
            labels_all = torch.cat([model(x[i:i + 256].float() / 255).argmax(1) for i in range(0, n, 256)])
    layer = tap(model, entropy_layer) if rho > 0 and entropy_layer else None
    hook = layer.__enter__() if layer else None
    try:
        for it in range(iterations):
            idx = torch.randint(0, n, (min(batch_size, n),), generator=g).to(device)
            xb = x[idx].float() / 255
            adv = (xb + delta).clamp(0, 1)
            logits = model(adv)
            labels = labels_all[idx] if labels_all is not None else torch.full_like(idx, int(target))
            loss = margin_loss(logits, labels, targeted=target is not None, kappa=kappa).mean()
            if hook is not None:
                loss = (1 - rho) * loss - rho * hook.entropy().mean()
            (grad,) = torch.autograd.grad(loss, delta)
            delta.grad = grad
            opt.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
            if progress and (it % 10 == 9 or it + 1 == iterations):
                progress(it + 1, iterations, {"loss": float(loss.detach())})
            if should_stop and should_stop():
                break
    finally:
        if layer:
            layer.__exit__(None, None, None)
        model.train(was_training)
    return delta.detach().float().cpu()
