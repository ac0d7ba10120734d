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
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

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


def feature_norm_defense(model: nn.Module, *, layers: str, clp: float, dr: float = 1.0, variant: str = "exp",
                         name: str = "cfn", probe: torch.Tensor | None = None
                         ) -> tuple[HookedWrapper, dict[str, Any], dict[str, float]]:
    """Wrap ``model`` with a NormGuard after each chosen layer: (wrapper, wrapper JSON, clipped share).

    ``probe`` (float images) measures, on the unwrapped model, the share of positions
    each guard will change — cheap, and it tells a user whether clp bites at all.
    """
    paths = stage_layers(model, layers, name)
    model.eval()
    clipped = _clipped_share(model, paths, clp, probe) if probe is not None else {}
    wrapper = HookedWrapper(model, paths, [NormGuard(clp, dr, variant) for _ in paths]).eval()
    spec = {"kind": "feature-norm", "defense": name, "layers": paths, "clp": clp, "dr": dr, "variant": variant}
    return wrapper, spec, clipped


def rebuild_feature_norm(model: nn.Module, wrapper: dict[str, Any]) -> HookedWrapper:
    guards = [NormGuard(wrapper["clp"], wrapper.get("dr", 1.0), wrapper.get("variant", "exp")) for _ in wrapper["layers"]]
    return HookedWrapper(model, wrapper["layers"], guards).eval()


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
