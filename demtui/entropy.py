"""Layer-wise entropy (Eq. 5 of the paper) and the tools to capture it by layer name.

A layer's output is flattened per sample, turned into a distribution with a softmax over
*all* its elements (no temperature) and scored with Shannon entropy in nats. UAPs drive
this number down at deep layers (a few features dominate); Democratic Training trains
on inputs that drive it down on purpose.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from demtui.errors import ModelError, did_you_mean


def layer_entropy(activations: torch.Tensor) -> torch.Tensor:
    """Eq. 5 per sample: H = −Σ_k p_k log p_k with p = softmax(flatten(χ)); shape (N,).

    Computed from log-softmax in float32 so it stays finite for large activations.
    """
    flat = activations.reshape(activations.shape[0], -1).float()
    log_p = torch.log_softmax(flat, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def max_entropy(num_features: int) -> float:
    """The uniform distribution's entropy, log(d): the ceiling of Eq. 5 for a d-wide layer."""
    return math.log(num_features)


def entropy_histogram(values: torch.Tensor, bins: int, lo: float, hi: float) -> list[int]:
    """Counts of ``values`` in ``bins`` equal bins over [lo, hi] (ends included)."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    if hi <= lo:
        raise ValueError("hi must exceed lo")
    vals = values.detach().float().cpu().clamp(lo, hi)
    idx = ((vals - lo) / (hi - lo) * bins).long().clamp_(0, bins - 1)
    return torch.bincount(idx, minlength=bins).tolist()


def entropy_gap(clean_mean: float, perturbed_mean: float) -> float:
    """RQ1's relative entropy difference: (H_clean − H_perturbed) / H_clean.

    Positive when the perturbation lowers entropy (the UAP signature); 0 for a clean
    mean of 0 (no entropy to lose).
    """
    if clean_mean == 0:
        return 0.0
    return (clean_mean - perturbed_mean) / clean_mean


class LayerTap:
    """Keeps the latest output of one named submodule (a forward hook) for the entropy loss."""

    def __init__(self, model: nn.Module, path: str) -> None:
        modules = dict(model.named_modules())
        if path not in modules:
            raise ModelError(f"Layer '{path}' does not exist in the model." + did_you_mean(path, modules)
                             + " Pass --layer with a role such as deep2 or a module path.")
        self.path = path
        self.output: torch.Tensor | None = None
        self._handle = modules[path].register_forward_hook(self._hook)

    def _hook(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        self.output = output[0] if isinstance(output, (tuple, list)) else output

    def entropy(self) -> torch.Tensor:
        """Per-sample entropy of the last captured output."""
        if self.output is None:
            raise RuntimeError(f"layer {self.path} has not run yet")
        return layer_entropy(self.output)

    def remove(self) -> None:
        self._handle.remove()


@contextlib.contextmanager
def tap(model: nn.Module, path: str) -> Iterator[LayerTap]:
    """A LayerTap removed on exit, so hooks never outlive the stage that set them."""
    layer = LayerTap(model, path)
    try:
        yield layer
    finally:
        layer.remove()
