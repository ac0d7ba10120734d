"""Materialise dataset subsets as uint8 tensors: the form every stage works on.

Repair and evaluation sets are small (≤ 5% of training data in the paper), so they are
held whole on the device as uint8 and converted per batch, with no DataLoader in any
hot loop.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Subset


class TensorImageDataset(Dataset):
    """(uint8 N×C×H×W, int64 N) tensors as a Dataset; ``tensors`` lets take_subset slice."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        assert x.dtype == torch.uint8 and x.dim() == 4 and len(x) == len(y)
        self.tensors = (x, y.long())

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.tensors[0][i], int(self.tensors[1][i])


def take_subset(dataset: Dataset, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` items (all if n ≥ len) as (uint8, int64) tensors."""
    total = len(dataset)  # type: ignore[arg-type]
    n = min(int(n), total)
    index = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return tensors[0][index].contiguous(), tensors[1][index].long().contiguous()
    loader = DataLoader(Subset(dataset, index.tolist()), batch_size=256, shuffle=False, num_workers=0)
    xs, ys = [], []
    for xb, yb in loader:
        if xb.dtype != torch.uint8:
            xb = (xb.float().clamp(0, 1) * 255).round().to(torch.uint8)
        xs.append(xb)
        ys.append(torch.as_tensor(yb).long())
    return torch.cat(xs), torch.cat(ys)
