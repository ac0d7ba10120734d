"""Input smoothing: blur every input before the classifier. A wrapping defense."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from demtui.api import DefenseData, DefenseResult


class Smoothed(nn.Module):
    """Gaussian blur (depthwise conv, fixed kernel) then the original model."""

    def __init__(self, model: nn.Module, sigma: float, kernel: int) -> None:
        super().__init__()
        self.model = model
        k = int(kernel)  # odd: the record's rule rejects even sizes when the spec is resolved
        self.sigma, self.kernel = float(sigma), k
        if sigma <= 0:
            weights = torch.zeros(k)
            weights[k // 2] = 1
        else:
            grid = torch.arange(k, dtype=torch.float32) - k // 2
            weights = torch.exp(-(grid**2) / (2 * sigma**2))
            weights = weights / weights.sum()
        self.register_buffer("blur", (weights[:, None] * weights[None, :]).expand(3, 1, k, k).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.kernel // 2
        blurred = nn.functional.conv2d(nn.functional.pad(x, (pad,) * 4, mode="replicate"), self.blur.to(x.dtype),
                                       groups=x.shape[1])
        return self.model(blurred)


def input_smoothing(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    wrapper = {"sigma": params["sigma"], "kernel": params["kernel"]}
    return DefenseResult(model=rebuild(model, wrapper).eval(), history={"trained": False}, wrapper=wrapper)


def rebuild(model: nn.Module, wrapper: dict[str, Any]) -> nn.Module:
    """Recreate the wrapper from its JSON description (the engine reloads defended runs this way)."""
    return Smoothed(model, float(wrapper["sigma"]), int(wrapper["kernel"]))
