"""PatchPerturbation: a visible patch pasted into the image (LaVAN's threat model).

Unlike an additive UAP there is no L∞ bound: the patch's pixels are free in [0, 1], but
only the pixels under its mask change. The patch sits at a fixed (top, left) or, with
``top``/``left`` left empty, at a random place per image. Random places are drawn from a
stored seed, one per position in the batch, so ``apply`` is deterministic and a saved
patch reproduces bit-exactly. Saved through the Perturbation base (kind ``"patch"``);
the header names this module so ``load_perturbation`` can import it on demand.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from demtui.errors import SpecError
from demtui.perturbation import Perturbation


def patch_side(image_hw: tuple[int, int], area: float, size: int | None = None) -> int:
    """Side of a square patch covering ``area`` of the image (or ``size`` pixels), checked to fit."""
    h, w = image_hw
    side = int(size) if size else max(1, round(math.sqrt(area * h * w)))
    if side > min(h, w):
        raise SpecError(f"A {side}×{side} patch does not fit in {h}×{w} images; "
                        "lower attack.area or attack.size.")
    return side


def check_location(image_hw: tuple[int, int], side: int, top: int | None, left: int | None) -> None:
    h, w = image_hw
    if (top is None) != (left is None):
        raise SpecError("Give both attack.top and attack.left for a fixed patch, or neither for a random place.")
    if top is not None and (top + side > h or left + side > w or top < 0 or left < 0):  # type: ignore[operator]
        raise SpecError(f"A {side}×{side} patch at top={top}, left={left} leaves the {h}×{w} image; "
                        f"use top ≤ {h - side} and left ≤ {w - side}.")


def random_places(batch: int, image_hw: tuple[int, int], side_hw: tuple[int, int],
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(top, left) for each of ``batch`` images, uniform over all positions that fit."""
    tops = torch.randint(0, image_hw[0] - side_hw[0] + 1, (batch,), generator=generator)
    lefts = torch.randint(0, image_hw[1] - side_hw[1] + 1, (batch,), generator=generator)
    return tops, lefts


def paste(x: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor, tops: torch.Tensor,
          lefts: torch.Tensor) -> torch.Tensor:
    """x (B,C,H,W) with ``patch`` (C,h,w) blended in through ``mask`` (1,h,w) at per-image places.

    Differentiable in ``patch``; pixels outside each image's mask are returned unchanged.
    """
    b, _, _, _ = x.shape
    h, w = patch.shape[-2:]
    dev = x.device
    rows = (tops.to(dev).view(b, 1, 1) + torch.arange(h, device=dev).view(1, h, 1)).expand(b, h, w)
    cols = (lefts.to(dev).view(b, 1, 1) + torch.arange(w, device=dev).view(1, 1, w)).expand(b, h, w)
    bi = torch.arange(b, device=dev).view(b, 1, 1).expand(b, h, w)
    xl = x.permute(0, 2, 3, 1)  # (B, H, W, C): one index triple picks a pixel's channels
    m = mask.to(dev, x.dtype).permute(1, 2, 0)  # (h, w, 1)
    p = patch.to(dev, x.dtype).permute(1, 2, 0)  # (h, w, C)
    region = xl[bi, rows, cols]  # (B, h, w, C)
    out = xl.index_put((bi, rows, cols), region * (1 - m) + p * m)
    return out.permute(0, 3, 1, 2)


class PatchPerturbation(Perturbation):
    """x ↦ x with a square patch pasted at a fixed or per-image random place."""

    kind = "patch"

    def __init__(self, patch: torch.Tensor, mask: torch.Tensor | None, image_hw: tuple[int, int],
                 top: int | None = None, left: int | None = None, seed: int = 0) -> None:
        self.patch = patch.detach().float().clamp(0, 1)
        self.mask = (torch.ones((1, *self.patch.shape[-2:]), device=self.patch.device) if mask is None
                     else mask.detach().float().clamp(0, 1))
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        check_location(self.image_hw, max(self.patch.shape[-2:]), top, left)
        self.top, self.left = top, left
        self.seed = int(seed)

    @property
    def random(self) -> bool:
        return self.top is None

    def places(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the patch goes in a batch of ``batch`` images (same answer every call)."""
        if self.random:
            return random_places(batch, self.image_hw, tuple(self.patch.shape[-2:]),
                                 torch.Generator().manual_seed(self.seed))
        return torch.full((batch,), int(self.top)), torch.full((batch,), int(self.left))  # type: ignore[arg-type]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.image_hw:
            raise SpecError(f"This patch was made for {self.image_hw[0]}×{self.image_hw[1]} images, "
                            f"not {x.shape[-2]}×{x.shape[-1]}; craft it again for this dataset.")
        tops, lefts = self.places(x.shape[0])
        return paste(x, self.patch, self.mask, tops, lefts).clamp(0.0, 1.0)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"patch": self.patch, "mask": self.mask}

    def meta(self) -> dict[str, Any]:
        return {"image_hw": list(self.image_hw), "top": self.top, "left": self.left, "seed": self.seed}

    @classmethod
    def from_saved(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> "PatchPerturbation":
        return cls(tensors["patch"], tensors["mask"], tuple(meta["image_hw"]), meta.get("top"), meta.get("left"),
                   int(meta.get("seed", 0)))

    def random_like(self, generator: torch.Generator) -> "PatchPerturbation":
        """A patch of uniform random colours with the same mask at the same place(s)."""
        content = torch.rand(tuple(self.patch.shape), generator=generator)
        return PatchPerturbation(content, self.mask.cpu(), self.image_hw, self.top, self.left, self.seed)

    def area(self) -> float:
        """Share of the image the mask covers."""
        return float(self.mask.sum()) / (self.image_hw[0] * self.image_hw[1])

    def preview(self) -> torch.Tensor:
        """The patch on a mid-grey image, at its place (or centred when the place is random)."""
        h, w = self.image_hw
        ph, pw = self.patch.shape[-2:]
        canvas = torch.full((1, self.patch.shape[0], h, w), 0.5)
        top = self.top if self.top is not None else (h - ph) // 2
        left = self.left if self.left is not None else (w - pw) // 2
        out = paste(canvas, self.patch.cpu(), self.mask.cpu(), torch.tensor([top]), torch.tensor([left]))
        return (out[0] * 255).round().clamp(0, 255).to(torch.uint8)
