"""The offline dataset: ten classes of shapes on smooth coloured clutter, made from a seed.

Why it exists: every feature must run with no network, and a UAP study needs a dataset
on which a CNN learns real spatial features (so a targeted UAP can hijack them) while
random noise of the same budget does not. Shapes on low-frequency clutter give that:
the class lives in the outline, the clutter forces the network to look for it.

What it is not: a benchmark. Figures measured on it show that the pipeline works and
how the method behaves on a small CNN; they say nothing about ImageNet-scale models.

Generation is vectorised with torch, chunked, and bit-for-bit deterministic for a seed.
"""

from __future__ import annotations

import math

import torch

SHAPE_CLASSES: tuple[str, ...] = (
    "circle", "ring", "square", "frame", "diamond", "triangle", "plus", "cross", "hbar", "vbar",
)
_CHUNK = 512


DEFAULT_CONTRAST = (0.15, 0.35)


def generate_shapes(n: int, seed: int, image_size: int = 32,
                    contrast: tuple[float, float] = DEFAULT_CONTRAST) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (uint8 N×3×S×S) and labels (int64), balanced over the ten classes.

    ``contrast`` bounds the per-channel colour offset of a shape from its background.
    """
    if not 0 < contrast[0] <= contrast[1] <= 1:
        raise ValueError("contrast must satisfy 0 < low <= high <= 1")
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.arange(n) % len(SHAPE_CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        chunk = labels[start:start + _CHUNK]
        images[start:start + len(chunk)] = _render(chunk, image_size, g, contrast)
    return images, labels


def _background(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Low-frequency colour clutter: a random 4×4 colour field upsampled, plus fine grain."""
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 0.6 + 0.2
    field = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    grain = (torch.rand(n, 3, size, size, generator=g) - 0.5) * 0.06
    return field + grain


def _masks(labels: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Soft (anti-aliased) shape masks in [0, 1], one per label; shape (N, 1, S, S)."""
    n = labels.shape[0]
    u = lambda lo, hi: torch.rand(n, 1, 1, generator=g) * (hi - lo) + lo  # noqa: E731
    radius = u(0.22, 0.36) * size
    cx = u(0.5, 0.5) * size + (torch.rand(n, 1, 1, generator=g) - 0.5) * (size - 2.2 * radius).clamp(min=0)
    cy = u(0.5, 0.5) * size + (torch.rand(n, 1, 1, generator=g) - 0.5) * (size - 2.2 * radius).clamp(min=0)
    thick = radius * u(0.28, 0.4)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    dx = (coords.view(1, 1, size) - cx) / radius  # (N, 1, S) -> broadcast (N, S, S)
    dy = (coords.view(1, size, 1) - cy) / radius
    dx, dy = dx.expand(n, size, size), dy.expand(n, size, size)
    t = thick / radius
    ax, ay = dx.abs(), dy.abs()
    # Signed "inside" distances in units of the radius (positive inside the shape).
    inside = torch.stack([
        1 - torch.sqrt(dx**2 + dy**2),                                   # circle
        t / 2 - (torch.sqrt(dx**2 + dy**2) - (1 - t / 2)).abs(),         # ring
        1 - torch.maximum(ax, ay),                                       # square
        t / 2 - (torch.maximum(ax, ay) - (1 - t / 2)).abs(),             # frame
        (1 - (ax + ay)) / math.sqrt(2),                                  # diamond
        torch.minimum(dy + 0.8, (0.8 - dy) / 2 - ax * 0.9),                # triangle (apex down)
        torch.maximum(torch.minimum(t / 2 * 1.2 - ax, 1 - ay),             # plus
                      torch.minimum(t / 2 * 1.2 - ay, 1 - ax)),
        torch.maximum(torch.minimum(t * 0.6 - (dx - dy).abs() / math.sqrt(2), 1 - torch.maximum(ax, ay)),
                      torch.minimum(t * 0.6 - (dx + dy).abs() / math.sqrt(2), 1 - torch.maximum(ax, ay))),  # cross
        torch.minimum(t * 0.7 - ay, 1 - ax),                             # hbar
        torch.minimum(t * 0.7 - ax, 1 - ay),                             # vbar
    ], dim=1)  # (N, 10, S, S)
    chosen = inside.gather(1, labels.view(n, 1, 1, 1).expand(n, 1, size, size))
    return (chosen * radius.unsqueeze(1) + 0.5).clamp(0, 1)  # ~1 px soft edge


def _render(labels: torch.Tensor, size: int, g: torch.Generator, contrast: tuple[float, float]) -> torch.Tensor:
    n = labels.shape[0]
    background = _background(n, size, g)
    mask = _masks(labels, size, g)
    # Shape colour: the background mean shifted by a random per-channel offset whose size
    # lies in ``contrast``. Low contrast is deliberate: with contrast far above ε, a shape
    # overwhelms any 10/255 perturbation and UAPs stop working on the victim at all.
    bg_mean = background.mean(dim=(2, 3), keepdim=True)
    lo, hi = contrast
    offset = (torch.rand(n, 3, 1, 1, generator=g) * (hi - lo) + lo) * (torch.randint(0, 2, (n, 3, 1, 1), generator=g) * 2 - 1)
    colour = bg_mean + offset
    colour = torch.where((colour > 1) | (colour < 0), bg_mean - offset, colour)
    shade = 1 + (torch.rand(n, 1, size, size, generator=g) - 0.5) * 0.1
    img = background * (1 - mask) + (colour * shade) * mask
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)
