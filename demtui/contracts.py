"""The heavy-side types plugin entry callables receive and return.

Imported only when a run starts (it imports torch). The torch-free records that name
these entry callables live in :mod:`demtui.components`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset


@dataclass
class BuiltModel:
    """What a model source's ``build`` returns.

    ``module`` takes float images in [0, 1] (any normalisation lives inside it).
    ``layers`` maps roles (shallow1 … deep2) to submodule paths *of module*;
    ``layer_prefix`` is prepended to a registry LayerMap's paths when the network is
    wrapped (e.g. ``"net."`` inside a normalising wrapper).
    """

    module: nn.Module
    input_size: int
    layers: dict[str, str] = field(default_factory=dict)
    repair_role: str = "deep2"
    layer_prefix: str = ""
    weights: str = "random"  # random | pretrained | checkpoint


@dataclass
class DatasetSplits:
    """A dataset source's answer: items are (uint8 tensor C×H×W, int label)."""

    train: Dataset
    test: Dataset
    classes: list[str]
    image_size: int


@dataclass
class AttackData:
    """Images an attack may use: the crafting set (from the training split) only.

    Evaluation images never reach an attack, so success rates are measured on
    held-out data.
    """

    x: torch.Tensor  # uint8 (N, C, H, W), on ctx.device
    y: torch.Tensor  # int64 (N,)
    num_classes: int
    layer: str  # the run's entropy layer path (adaptive attacks use it)


@dataclass
class DefenseData:
    """The clean repair subset (≤5% of the training split in the paper) and context.

    ``uaps`` is empty unless the defense declares it needs known UAPs (e.g. known-UAP
    adversarial training); evaluation UAPs are never passed here.
    """

    x: torch.Tensor  # uint8 (N, C, H, W), on ctx.device
    y: torch.Tensor  # int64 (N,)
    num_classes: int
    layer: str
    targets: list[int]
    uaps: list[Any] = field(default_factory=list)


@dataclass
class DefenseResult:
    """A defended model and what the defense wants recorded (history, notes)."""

    model: nn.Module
    history: dict[str, Any] = field(default_factory=dict)
    wrapper: dict[str, Any] | None = None  # JSON describing an architecture wrapper


class ProgressFn(Protocol):
    def __call__(self, done: int, total: int, info: dict[str, Any] | None = None) -> None: ...
