"""CFN (Yu et al., ICCV 2021) and FNS (Yu et al., IEEE TNNLS 2023): feature-norm limits, no training.

Universal perturbations tend to produce feature vectors of unusually large norm; these
defenses cap them. At every spatial position of a layer's output the channel vector f
has L2 norm n; the threshold is T = clp · mean over positions of n (per sample).

- CFN clips: n' = min(n, T).
- FNS suppresses what lies above the threshold with a non-increasing decay of the
  excess ratio r = n / T > 1: exponential n' = T · dr^−(r−1) (FNS-E) or Gaussian
  n' = T · dr^−(r−1)² (FNS-G); dr = 1 gives n' = T, i.e. CFN. The authors' scripts use
  clp 1.25 with dr 1.5 (E) or 2.0 (G) on CIFAR-10; this is our reading of the
  published description, written from it.

Either way every output norm is ≤ T, which ``tests/test_defenses.py`` checks on hooked
outputs. The layers are inserted after residual stages (``wrapping.residual_stages``) or
at explicit module paths; the original weights are not touched.

Clipping shifts the statistics that BatchNorm layers after a guard see, so the CFN
authors re-estimate BatchNorm statistics after inserting the layers. Here that is
``recalibrate_bn``: the wrapped network's BatchNorm statistics are re-estimated on
clean repair images, and the new statistics are applied by a ``BatchNormShift`` unit
after each affected BatchNorm layer. In eval mode BN computes y = γ(x − μ)/σ + β, so
the output with new statistics (μ', σ') is the exact per-channel affine map
y' = a·y + b with a = σ/σ', b = β(1 − a) + γ(μ − μ')/σ'. The original state dict
stays exactly as it was.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from demtui.evaluation import as_float
from demtui.plugins.defenses.wrapping import FeatureUnit, HookedWrapper, stage_layers

_TINY = 1e-12


class NormGuard(FeatureUnit):
    """Caps per-position channel norms at clp × their spatial mean (CFN), optionally decaying above it (FNS)."""

    def __init__(self, clp: float, dr: float = 1.0, variant: str = "exp") -> None:
        super().__init__()
        if clp <= 0 or dr < 1 or variant not in ("exp", "gauss"):
            raise ValueError("clp > 0, dr ≥ 1, variant exp|gauss")
        self.clp, self.dr, self.variant = float(clp), float(dr), variant

    def extra_repr(self) -> str:
        return f"clp={self.clp}, dr={self.dr}, variant={self.variant}"

    def config(self) -> dict[str, Any]:
        return {"clp": self.clp, "dr": self.dr, "variant": self.variant}

    def threshold(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-position norm, per-sample threshold T), shapes (N, 1, *spatial) and (N, 1, 1...)."""
        norm = f.float().norm(dim=1, keepdim=True)
        spatial = tuple(range(2, f.dim()))
        mean = norm.mean(dim=spatial, keepdim=True) if spatial else norm
        return norm, self.clp * mean

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if f.dim() < 2:
            return f
        norm, thr = self.threshold(f)
        ratio = norm / thr.clamp_min(_TINY)
        excess = (ratio - 1).clamp_min(0)
        power = excess if self.variant == "exp" else excess * excess
        target = thr * torch.exp(-power * math.log(self.dr))  # dr^−power; = T when dr = 1
        scale = torch.where(ratio > 1, target / norm.clamp_min(_TINY), torch.ones_like(norm))
        return f * scale.to(f.dtype)


class BatchNormShift(FeatureUnit):
    """Per-channel a·y + b after a BatchNorm layer: its output as if it had re-estimated statistics.

    Only in eval mode: in train mode BatchNorm normalises with batch statistics, which
    need no correction.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("shift", torch.zeros(channels))

    @classmethod
    def between(cls, old: nn.modules.batchnorm._BatchNorm, new: nn.modules.batchnorm._BatchNorm) -> "BatchNormShift":
        """The unit mapping ``old``'s eval-mode output to the output with ``new``'s running statistics."""
        unit = cls(old.num_features).to(old.running_var.device)
        sigma_old = (old.running_var.float() + old.eps).sqrt()
        sigma_new = (new.running_var.float() + new.eps).sqrt()
        gamma = old.weight.detach().float() if old.weight is not None else torch.ones_like(sigma_old)
        beta = old.bias.detach().float() if old.bias is not None else torch.zeros_like(sigma_old)
        a = sigma_old / sigma_new
        unit.scale.copy_(a)
        unit.shift.copy_(beta * (1 - a) + gamma * (old.running_mean.float() - new.running_mean.float()) / sigma_new)
        return unit

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.training or y.dim() < 2:
            return y
        view = (1, -1) + (1,) * (y.dim() - 2)
        return y * self.scale.view(view).to(y.dtype) + self.shift.view(view).to(y.dtype)


def feature_norm_defense(model: nn.Module, *, layers: str, clp: float, dr: float = 1.0, variant: str = "exp",
                         name: str = "cfn", probe: torch.Tensor | None = None,
                         recalibrate: torch.Tensor | None = None, batch_size: int = 128,
                         ) -> tuple[HookedWrapper, dict[str, Any], dict[str, float]]:
    """Wrap ``model`` with a NormGuard after each chosen layer: (wrapper, wrapper JSON, clipped share).

    ``probe`` (float images) measures, on the unwrapped model, the share of positions
    each guard will change — cheap, and it tells a user whether clp bites at all.
    ``recalibrate`` (uint8 or float images) re-estimates the statistics of every
    BatchNorm layer after the first guard on those images (the CFN authors' step).
    """
    paths = stage_layers(model, layers, name)
    model.eval()
    clipped = _clipped_share(model, paths, clp, probe) if probe is not None else {}
    guards = [NormGuard(clp, dr, variant) for _ in paths]
    spec: dict[str, Any] = {"kind": "feature-norm", "defense": name, "layers": paths, "clp": clp, "dr": dr,
                            "variant": variant, "bn_layers": []}
    if recalibrate is None or len(recalibrate) == 0:
        return HookedWrapper(model, paths, guards).eval(), spec, clipped
    staged = HookedWrapper(copy.deepcopy(model), paths, [copy.deepcopy(g) for g in guards])
    bn_paths = _batchnorms_after(staged.model, paths, recalibrate[:2])
    new_stats = _reestimate(staged, bn_paths, recalibrate, batch_size)
    shifts = [BatchNormShift.between(model.get_submodule(p), new_stats[p]) for p in bn_paths]
    spec["bn_layers"] = bn_paths
    return HookedWrapper(model, [*paths, *bn_paths], [*guards, *shifts]).eval(), spec, clipped


def rebuild_feature_norm(model: nn.Module, wrapper: dict[str, Any]) -> HookedWrapper:
    guards: list[FeatureUnit] = [NormGuard(wrapper["clp"], wrapper.get("dr", 1.0), wrapper.get("variant", "exp"))
                                 for _ in wrapper["layers"]]
    bn_paths = list(wrapper.get("bn_layers", []))
    shifts = [BatchNormShift(model.get_submodule(p).num_features) for p in bn_paths]
    return HookedWrapper(model, [*wrapper["layers"], *bn_paths], [*guards, *shifts]).eval()


@torch.no_grad()
def _batchnorms_after(model: nn.Module, guard_paths: list[str], x: torch.Tensor) -> list[str]:
    """BatchNorm layers that run after the first guarded layer finishes, in forward order."""
    order: list[str] = []
    handles = [m.register_forward_hook(lambda _m, _i, _o, n=n: order.append(n))
               for n, m in model.named_modules() if n]
    was_training = model.training
    try:
        model.eval()(as_float(x))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    first = min(order.index(p) for p in guard_paths)  # a hook fires when its module finishes

    def has_statistics(name: str) -> bool:  # a BatchNorm without running statistics always uses the batch's
        module = model.get_submodule(name)
        return isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is not None

    return list(dict.fromkeys(n for n in order[first + 1:] if has_statistics(n)))


@torch.no_grad()
def _reestimate(staged: HookedWrapper, bn_paths: list[str], x: torch.Tensor, batch_size: int
                ) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """Population statistics of ``bn_paths`` on ``x``, seen through the guards (a cumulative average)."""
    staged.eval()
    bns = {p: staged.model.get_submodule(p) for p in bn_paths}
    for bn in bns.values():
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch counts equally
        bn.train()
    for i in range(0, len(x), batch_size):
        staged(as_float(x[i:i + batch_size]))
    return bns


@torch.no_grad()
def _clipped_share(model: nn.Module, paths: list[str], clp: float, x: torch.Tensor) -> dict[str, float]:
    outputs: dict[str, torch.Tensor] = {}
    handles = [model.get_submodule(p).register_forward_hook(
        lambda _m, _i, out, p=p: outputs.__setitem__(p, out)) for p in paths]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    guard = NormGuard(clp)
    share = {}
    for p, f in outputs.items():
        norm, thr = guard.threshold(f)
        share[p] = round(float((norm > thr).float().mean()), 4)
    return share
