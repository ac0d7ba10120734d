"""Architecture-changing defenses that leave the original network untouched.

A ``HookedWrapper`` holds the original network as ``model`` and small added modules
(``units``) that forward hooks apply to the outputs of named layers. So:

- the original state dict is exactly the wrapper's ``model.*`` entries (tests compare
  them), and original layer paths stay valid under ``model.`` (the engine's entropy
  analysis follows them there);
- a saved wrapper is rebuilt from a JSON description (the layer paths and each unit's
  constructor arguments) and then loaded from the same safetensors file as any model.

Hooks are bound methods of the units, so ``copy.deepcopy`` of a wrapper re-binds them to
the copied units.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from demtui.errors import ModelError, did_you_mean

#: ResNet-style stage names: torchvision/timm ResNets (layer1..4) and the WRN builder (block1..3).
_STAGE_PATTERNS = (re.compile(r"layer[1-4]"), re.compile(r"block[1-3]"))


class FeatureUnit(nn.Module):
    """A module applied to one layer's output inside a wrapped network."""

    def hook(self, _module: nn.Module, _inputs: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return self(output)
        return output  # tuple outputs (rare for conv stages) pass through untouched


class HookedWrapper(nn.Module):
    """The original network plus ``units[i]`` applied after the layer at ``paths[i]``."""

    def __init__(self, model: nn.Module, paths: Sequence[str], units: Sequence[FeatureUnit]) -> None:
        super().__init__()
        if len(paths) != len(units):
            raise ValueError("one unit per layer path")
        self.model = model
        self.paths = list(paths)
        self.units = nn.ModuleList(units)
        for path, unit in zip(self.paths, self.units, strict=True):
            model.get_submodule(path).register_forward_hook(unit.hook)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def resolve_layers(model: nn.Module, paths: Sequence[str], param: str) -> list[str]:
    """Check every path exists; an unknown one gets a 'did you mean' naming the param to change."""
    names = [n for n, _ in model.named_modules() if n]
    for path in paths:
        if path not in names:
            raise ModelError(f"Layer '{path}' does not exist in the model." + did_you_mean(path, names)
                             + f" Set defense.{param} to a module path ('demtui show MODEL' lists them).")
    return list(paths)


def parse_paths(text: str) -> list[str]:
    return [p.strip() for p in str(text or "").split(",") if p.strip()]


def residual_stages(model: nn.Module) -> list[str]:
    """Paths of ResNet-style stages (``layer1..4`` or ``block1..3`` under one parent), in order."""
    names = [n for n, _ in model.named_modules() if n]
    for pattern in _STAGE_PATTERNS:
        by_parent: dict[str, list[str]] = {}
        for name in names:
            parent, _, leaf = name.rpartition(".")
            if pattern.fullmatch(leaf):
                by_parent.setdefault(parent, []).append(name)
        groups = [g for g in by_parent.values() if len(g) >= 2]
        if groups:
            return max(groups, key=len)
    return []


def stage_layers(model: nn.Module, text: str, defense: str) -> list[str]:
    """The explicit ``layers`` param, else the residual stages; a model with neither is an error."""
    explicit = parse_paths(text)
    if explicit:
        return resolve_layers(model, explicit, "layers")
    stages = residual_stages(model)
    if stages:
        return stages
    convs = [name for name, child in model.named_children()
             if any(isinstance(m, nn.Conv2d) for m in child.modules())]
    hint = f", e.g. defense.layers={convs[len(convs) // 2]},{convs[-1]}" if len(convs) >= 2 else ""
    raise ModelError(f"{defense} goes after residual stages (layer1..layer4 or block1..block3), which this model "
                     f"does not have; set defense.layers to comma-separated module paths{hint}.")


def freeze(model: nn.Module) -> list[bool]:
    """Stop gradients into ``model``'s parameters; returns the flags to restore."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    return flags


def unfreeze(model: nn.Module, flags: list[bool]) -> None:
    for p, flag in zip(model.parameters(), flags, strict=True):
        p.requires_grad_(flag)
