"""Materialise dataset subsets as uint8 tensors, and feed them to the model in batches.

Repair and evaluation sets are small at CIFAR scale (≤ 5% of training data in the
paper), so they are held whole on the device as uint8 and sliced per batch, with no
DataLoader in any hot loop. At ImageNet scale they are not: 5% of ImageNet is about 64k
images, ~9.6 GB at 224×224. Above the run's memory budget (``run.memory_budget``) a
subset is decoded once by worker processes into a memory-mapped file (the OS pages it in
and out; it never sits whole in RAM or on the GPU) and streamed to the device through a
DataLoader with worker processes, pinned memory on CUDA and prefetch. Both paths visit
the same images in the same order in the same batches, so results are identical.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

#: Default of ``run.memory_budget``: GiB of images a run may hold whole.
DEFAULT_BUDGET_GIB = 2.0
#: Below this many images, worker processes cost more to start than they save.
_PARALLEL_MIN = 256
_DECODE_BATCH = 256


class TensorImageDataset(Dataset):
    """(uint8 N×C×H×W, int64 N) tensors as a Dataset; ``tensors`` lets take_subset slice."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        assert x.dtype == torch.uint8 and x.dim() == 4 and len(x) == len(y)
        self.tensors = (x, y.long())

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.tensors[0][i], int(self.tensors[1][i])


def budget_bytes(gib: float | None) -> int | None:
    """``run.memory_budget`` in bytes (None: no budget, hold everything)."""
    return None if gib is None else int(float(gib) * (1 << 30))


def default_workers(n: int) -> int:
    """Worker processes for ``n`` images: none for small sets, else one per core (at most 8)."""
    return 0 if n < _PARALLEL_MIN else min(8, os.cpu_count() or 1)


def spill_tensor(shape: tuple[int, ...], directory: Path | str | None = None) -> torch.Tensor:
    """A uint8 tensor backed by an unlinked file: its pages live on disk, not in RAM.

    The file is removed as soon as it is mapped, so nothing is left behind if the run dies.
    """
    directory = Path(directory or tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    numel = 1
    for s in shape:
        numel *= int(s)
    fd, name = tempfile.mkstemp(prefix="subset-", suffix=".u8", dir=directory)
    try:
        os.ftruncate(fd, max(1, numel))
        t = torch.from_file(name, shared=True, size=max(1, numel), dtype=torch.uint8)
    finally:
        os.close(fd)
        os.unlink(name)
    return t[:numel].view(*shape)


def take_subset(dataset: Dataset, n: int, seed: int, *, hold_bytes: int | None = None,
                workers: int | None = None, spill_dir: Path | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` items (all if n ≥ len) as (uint8, int64) tensors.

    Items that must be decoded (image files, resizing) are decoded by ``workers`` processes
    (default: one per core for sets of 256 or more) in index order. When the images
    exceed ``hold_bytes`` they go to a memory-mapped file (``spill_dir``) instead of RAM.
    """
    total = len(dataset)  # type: ignore[arg-type]
    n = min(int(n), total)
    index = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        x_all, y_all = tensors
        shape = (n, *x_all.shape[1:])
        if not _too_big(shape, hold_bytes):
            return x_all[index].contiguous(), y_all[index].long().contiguous()
        out = spill_tensor(shape, spill_dir)
        for s in range(0, n, 4096):
            out[s:s + 4096] = x_all[index[s:s + 4096]]
        return out, y_all[index].long().contiguous()
    workers = default_workers(n) if workers is None else workers
    loader = DataLoader(Subset(dataset, index.tolist()), batch_size=_DECODE_BATCH, shuffle=False,
                        num_workers=workers, prefetch_factor=4 if workers else None)
    out: torch.Tensor | None = None
    ys, start = [], 0
    for xb, yb in loader:
        if xb.dtype != torch.uint8:
            xb = (xb.float().clamp(0, 1) * 255).round().to(torch.uint8)
        if out is None:
            shape = (n, *xb.shape[1:])
            out = spill_tensor(shape, spill_dir) if _too_big(shape, hold_bytes) else torch.empty(shape, dtype=torch.uint8)
        out[start:start + len(xb)] = xb
        start += len(xb)
        ys.append(torch.as_tensor(yb).long())
    if out is None:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return out, torch.cat(ys)


def _too_big(shape: tuple[int, ...], hold_bytes: int | None) -> bool:
    numel = 1
    for s in shape:
        numel *= int(s)
    return hold_bytes is not None and numel > hold_bytes


def place(x: torch.Tensor, device: torch.device, hold_bytes: int | None) -> torch.Tensor:
    """On the device when it fits the budget; otherwise left where it is (RAM or a mapped file)."""
    if hold_bytes is not None and x.numel() * x.element_size() > hold_bytes:
        return x
    return x.to(device)


def should_stream(x: torch.Tensor, device: torch.device, hold_bytes: int | None) -> bool:
    """Stream (DataLoader) a host tensor over the budget; slice everything else."""
    return x.device.type == "cpu" and hold_bytes is not None and x.numel() * x.element_size() > hold_bytes


class _Rows(Dataset):
    """Item i = rows [i·b, (i+1)·b) of ``x``: a DataLoader over it yields exactly the sliced batches."""

    def __init__(self, x: torch.Tensor, batch_size: int) -> None:
        self.x, self.b = x, batch_size

    def __len__(self) -> int:
        return (self.x.shape[0] + self.b - 1) // self.b

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i * self.b:(i + 1) * self.b].clone()


def batches(x: torch.Tensor, batch_size: int, device: torch.device, *, stream: bool = False,
            workers: int | None = None) -> Iterator[torch.Tensor]:
    """Consecutive uint8 batches of ``x`` on ``device``; the same batches whether streamed or sliced.

    Streaming reads ahead with worker processes (``prefetch_factor`` 4 each) and, on CUDA,
    pinned host buffers so copies overlap compute.
    """
    if not stream:
        for start in range(0, x.shape[0], batch_size):
            yield x[start:start + batch_size].to(device, non_blocking=True)
        return
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    loader = DataLoader(_Rows(x, batch_size), batch_size=None, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None)
    for xb in loader:
        yield xb.to(device, non_blocking=True)
