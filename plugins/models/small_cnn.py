"""SmallCNN: the offline default victim, small enough to train and repair on a CPU.

A VGG-style stack with BatchNorm (so the BatchNorm choices of Democratic Training
matter here as they do on ResNets), max-pool stages and a global average pool feeding
one dense layer: the last pooling layer is the repair layer, as in the paper's
split points.
"""

from __future__ import annotations

import torch
from torch import nn

#: Role → module path (paper Fig. 2: shallow → deep). ``gap`` is the last pooling layer.
SMALL_CNN_LAYERS: tuple[tuple[str, str], ...] = (
    ("shallow1", "conv1"), ("shallow2", "pool1"), ("middle1", "conv3"),
    ("middle2", "pool2"), ("deep1", "conv5"), ("deep2", "gap"),
)
SMALL_CNN_REPAIR_LAYER = "deep2"


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Takes images in [0, 1]; normalisation is built in so attacks work in pixel space."""

    def __init__(self, num_classes: int = 10, width: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        w = int(width)
        self.register_buffer("mean", torch.full((1, in_channels, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, in_channels, 1, 1), 0.25))
        self.conv1, self.conv2 = _conv(in_channels, w), _conv(w, w)
        self.pool1 = nn.MaxPool2d(2)
        self.conv3, self.conv4 = _conv(w, 2 * w), _conv(2 * w, 2 * w)
        self.pool2 = nn.MaxPool2d(2)
        self.conv5, self.conv6 = _conv(2 * w, 4 * w), _conv(4 * w, 4 * w)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = self.pool1(self.conv2(self.conv1(x)))
        x = self.pool2(self.conv4(self.conv3(x)))
        x = self.gap(self.conv6(self.conv5(x)))
        return self.fc(torch.flatten(x, 1))
