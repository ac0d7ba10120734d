"""SFR, Selective Feature Regeneration (Borkar, Heide & Karam, CVPR 2020).

Universal perturbations act through a few early convolutional filters. SFR ranks the
filters of one early layer by how much UAPs move their activations, and puts a small
trainable *feature regeneration unit* (FRU) on the top ``ratio`` of them (the paper:
50%); the other channels pass through unchanged. Only the FRUs train — on clean and
UAP-perturbed images — while the original network stays frozen in eval mode, so its
weights and BatchNorm statistics are exactly as before.

Choices here (the paper trains on ImageNet with many synthetic perturbations):
- The UAPs are *known UAPs* crafted inside the defense with DF-UAP on the repair subset
  against the original model (``adversarial.craft_known_uaps``), never the run's
  evaluation UAPs.
- Ranking ``rank="uap"`` (default) measures each channel's mean |a(x+δ) − a(x)| under
  those UAPs; ``rank="weight"`` uses the ℓ1 norm of the layer's last convolution
  filters, the cheap proxy Borkar et al. also discuss.
- An FRU is conv3×3 → ReLU → conv3×3 with a residual connection and a zero-initialised
  last convolution, so the wrapped network starts out identical to the original.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from demtui.errors import ModelError
from demtui.plugins.defenses.adversarial import uap_loss
from demtui.plugins.defenses.finetune import finetune
from demtui.plugins.defenses.wrapping import FeatureUnit, HookedWrapper, freeze, unfreeze


class RegenerationUnit(FeatureUnit):
    """Regenerates the channels in ``selected``: f_sel ← f_sel + body(f_sel)."""

    def __init__(self, selected: Sequence[int], hidden: int) -> None:
        super().__init__()
        k = len(selected)
        self.register_buffer("index", torch.tensor(list(selected), dtype=torch.long))
        self.body = nn.Sequential(nn.Conv2d(k, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, k, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if f.dim() != 4:
            raise ModelError(f"SFR needs a convolutional layer (N, C, H, W output), got shape {tuple(f.shape)}; "
                             "set defense.layer to an early convolution layer.")
        sel = f.index_select(1, self.index)
        return f.index_copy(1, self.index, sel + self.body(sel).to(f.dtype))


@torch.no_grad()
def _layer_output(model: nn.Module, path: str, x: torch.Tensor) -> torch.Tensor:
    box: list[torch.Tensor] = []
    handle = model.get_submodule(path).register_forward_hook(lambda _m, _i, out: box.append(out))
    try:
        model(x)
    finally:
        handle.remove()
    return box[-1]


@torch.no_grad()
def uap_sensitivity(model: nn.Module, path: str, x: torch.Tensor, uaps: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Per channel: mean |a(x+δ) − a(x)| over images, positions and known UAPs; shape (C,)."""
    model.eval()
    total: torch.Tensor | None = None
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].float() / 255
        clean = _layer_output(model, path, xb).float()
        for delta in uaps:
            moved = _layer_output(model, path, (xb + delta.to(xb)).clamp(0, 1)).float()
            diff = (moved - clean).abs().sum(dim=tuple(d for d in range(moved.dim()) if d != 1))
            total = diff if total is None else total + diff
    assert total is not None
    return total / (len(x) * len(uaps))


def weight_sensitivity(model: nn.Module, path: str, channels: int) -> torch.Tensor:
    """ℓ1 norm of each output filter of the layer's last convolution; shape (C,)."""
    convs = [m for m in model.get_submodule(path).modules() if isinstance(m, nn.Conv2d)]
    if not convs or convs[-1].out_channels != channels:
        raise ModelError(f"Layer '{path}' has no convolution producing its {channels} channels to rank by weight; "
                         "set defense.rank=uap or choose a convolution layer.")
    return convs[-1].weight.detach().abs().flatten(1).sum(1).float().cpu()


def select_channels(scores: torch.Tensor, ratio: float) -> list[int]:
    """The top ``ratio`` share of channels by score (at least one), in channel order."""
    k = max(1, math.ceil(ratio * len(scores)))
    return sorted(torch.topk(scores.cpu(), k).indices.tolist())


def sfr_defense(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    uaps: torch.Tensor,
    *,
    layer: str,
    ratio: float = 0.5,
    hidden: int | None = None,
    rank: str = "uap",
    p: float = 0.5,
    alpha: float = 0.5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    **loop: Any,
) -> tuple[HookedWrapper, dict[str, Any], dict[str, Any]]:
    """Rank, insert FRUs after ``layer`` and train them; returns (wrapper, wrapper JSON, history)."""
    model.eval()
    x, uaps = x.to(device), uaps.to(device)
    channels = int(_layer_output(model, layer, x[:2].float() / 255).shape[1])
    if rank == "uap":
        scores = uap_sensitivity(model, layer, x[:512], uaps).cpu()
    else:
        scores = weight_sensitivity(model, layer, channels)
    selected = select_channels(scores, ratio)
    width = int(hidden or len(selected))
    unit = RegenerationUnit(selected, width).to(device)
    wrapper = HookedWrapper(model, [layer], [unit])
    flags = freeze(model)

    def set_mode() -> None:
        wrapper.train()
        model.eval()  # the original network never updates its BatchNorm statistics

    g = torch.Generator().manual_seed(seed + 31)
    try:
        history = finetune(wrapper, x, y, uap_loss(wrapper, uaps, p=p, alpha=alpha, generator=g), name="sfr",
                           parameters=unit.parameters(), set_mode=set_mode, seed=seed, device=device, **loop)
    finally:
        unfreeze(model, flags)
        wrapper.eval()
    spec = {"kind": "sfr", "layer": layer, "selected": selected, "hidden": width}
    history.update(layer=layer, channels=channels, regenerated=len(selected), rank=rank,
                   known_uaps=int(len(uaps)), top_scores=[round(float(scores[i]), 5) for i in selected[:8]])
    return wrapper, spec, history


def rebuild_sfr(model: nn.Module, wrapper: dict[str, Any]) -> HookedWrapper:
    unit = RegenerationUnit(wrapper["selected"], int(wrapper["hidden"]))
    return HookedWrapper(model, [wrapper["layer"]], [unit]).eval()
