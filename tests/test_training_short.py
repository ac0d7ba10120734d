"""A victim with only a handful of optimiser steps still trains (no schedule crash)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from demtui.training import train_classifier


@pytest.mark.parametrize("n", [16, 32, 64, 80, 160])  # 1, 2, 4, 5 and 10 steps of 16
def test_few_steps_train_without_a_schedule_error(n: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    x = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    y = torch.randint(0, 3, (n,))
    history = train_classifier(model, x, y, epochs=1, batch_size=16, lr=0.1, device="cpu", seed=0)
    assert len(history["loss"]) == 1 and history["loss"][0] > 0
