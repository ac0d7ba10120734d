"""DF-UAP (Zhang et al., CVPR 2020): a universal perturbation optimised directly with Adam.

The loss is a bounded logit margin: for a target t, clamp(max_{j≠t} z_j − z_t, min=−κ),
so samples already pushed κ past the boundary stop pulling and the budget goes to the rest.
Two variants (``loss``):

- ``fixed-ref`` (default): the *fixed-reference* margin every UAP script of the paper's
  authors runs: the largest non-target logit is detached (a constant), so the gradient only
  raises z_t. "Before" numbers with this default are the paper's attack.
- ``margin``: gradients flow through both logits (the target is raised *and* the strongest
  rival lowered). It is the stronger attack on the quickstart victim (docs/attacks.md).

Non-targeted mode uses the mirror margin on the clean prediction (the detached reference is
then the largest other logit). With ρ > 0 the loss becomes Eq. 11's adaptive attack,
(1−ρ)·margin − ρ·H_l(x+δ): the attacker also *raises* layer entropy to look clean to an
entropy-based defense.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from demtui.entropy import tap


#: DF-UAP loss variants: the authors' fixed-reference margin (default) and the full margin.
LOSSES = ("fixed-ref", "margin")


def margin_loss(logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool, kappa: float,
                fixed_reference: bool = False) -> torch.Tensor:
    """Per-sample bounded logit margin; minimising it moves samples toward (away from) ``labels``.

    ``fixed_reference`` detaches the largest other logit, so only the ``labels`` logit gets a
    gradient (the authors' variant).
    """
    logits = logits.float()
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf")).amax(1)
    if fixed_reference:
        others = others.detach()
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
    loss: str = "fixed-ref",
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Return δ (1×C×H×W, float32, ‖δ‖∞ ≤ eps) crafted on uint8 images ``x``.

    The model stays in eval mode and its weights get no gradients; only δ is optimised.
    ``loss`` is ``fixed-ref`` (the authors' fixed-reference margin) or ``margin``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    fixed = loss == "fixed-ref"
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
            objective = margin_loss(logits, labels, targeted=target is not None, kappa=kappa,
                                    fixed_reference=fixed).mean()
            if hook is not None:
                objective = (1 - rho) * objective - rho * hook.entropy().mean()
            (grad,) = torch.autograd.grad(objective, delta)
            delta.grad = grad
            opt.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
            if progress and (it % 10 == 9 or it + 1 == iterations):
                progress(it + 1, iterations, {"loss": float(objective.detach())})
            if should_stop and should_stop():
                break
    finally:
        if layer:
            layer.__exit__(None, None, None)
        model.train(was_training)
    return delta.detach().float().cpu()
