"""torchvision datasets and image folders, as uint8 tensors of one square size.

Users who are online get ``download=True``; offline, a missing dataset is one sentence
that says where demtui looked and how to fix it. Splits that the source does not define
(EuroSAT, Caltech101, a flat image folder) are made deterministically from a seed,
stratified per class, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from demtui.data import TensorImageDataset
from demtui.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class LoadedSplits:
    train: Dataset
    test: Dataset
    classes: list[str]
    image_size: int


def _transform(image_size: int):
    from torchvision import transforms as T

    return T.Compose([T.Lambda(lambda im: im.convert("RGB")), T.Resize(image_size), T.CenterCrop(image_size),
                      T.PILToTensor()])


def _missing(name: str, root: Path, exc: Exception) -> DataError:
    return DataError(f"{name} is not in {root} and could not be downloaded ({type(exc).__name__}); download it once "
                     "with network or point --set dataset.root=DIR at a copy.")


def stratified_split(labels: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Per-class seeded split: every class keeps ≥ 1 training item and gets its share of held-out ones."""
    g = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    train, held = [], []
    for label in sorted(by_class):
        idx = by_class[label]
        order = [idx[j] for j in torch.randperm(len(idx), generator=g).tolist()]
        k = min(len(idx) - 1, round(len(idx) * val_fraction)) if len(idx) > 1 else 0
        held += order[:k]
        train += order[k:]
    return sorted(train), sorted(held)


def load_cifar10(root: Path, download: bool, image_size: int) -> LoadedSplits:
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(str(root), train=True, download=download)
        test = CIFAR10(str(root), train=False, download=download)
    except Exception as exc:  # noqa: BLE001 - offline, corrupt or absent: one sentence
        raise _missing("CIFAR-10", root, exc) from None

    def to_tensors(ds) -> Dataset:
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        if image_size != x.shape[-1]:
            x = torch.nn.functional.interpolate(x.float(), size=(image_size, image_size), mode="bilinear",
                                                antialias=True, align_corners=False).round().clamp(0, 255).byte()
        return TensorImageDataset(x, torch.tensor(ds.targets))

    return LoadedSplits(to_tensors(train), to_tensors(test), list(train.classes), image_size)


def load_eurosat(root: Path, download: bool, image_size: int, seed: int = 0) -> LoadedSplits:
    from torchvision.datasets import EuroSAT

    try:
        full = EuroSAT(str(root), transform=_transform(image_size), download=download)
    except Exception as exc:  # noqa: BLE001
        raise _missing("EuroSAT", root, exc) from None
    train, test = stratified_split(list(full.targets), 0.2, seed)
    return LoadedSplits(Subset(full, train), Subset(full, test), list(full.classes), image_size)


def load_caltech101(root: Path, download: bool, image_size: int, seed: int = 0) -> LoadedSplits:
    from torchvision.datasets import Caltech101

    try:
        full = Caltech101(str(root), target_type="category", transform=_transform(image_size), download=download)
    except Exception as exc:  # noqa: BLE001
        raise _missing("Caltech101", root, exc) from None
    train, test = stratified_split(list(full.y), 0.2, seed)
    return LoadedSplits(Subset(full, train), Subset(full, test), list(full.categories), image_size)


def _folder(path: Path, image_size: int, classes: list[str] | None = None):
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(path), transform=_transform(image_size),
                     is_valid_file=lambda p: p.lower().endswith(IMAGE_SUFFIXES))
    if classes is not None and ds.classes != classes:
        raise DataError(f"The class folders of {path} differ from those of the training folder; "
                        "give both splits the same class subfolders.")
    return ds


def load_image_folder(root: Path, image_size: int, val_fraction: float, seed: int = 0) -> LoadedSplits:
    """ImageNet-style ``root/train`` + ``root/val`` (or ``test``), or one folder split by ``val_fraction``."""
    if not root.is_dir():
        raise DataError(f"Dataset folder '{root}' does not exist; pass --set dataset.root=DIR with one subfolder per class.")
    held_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    try:
        if (root / "train").is_dir() and held_dir is not None:
            train = _folder(root / "train", image_size)
            test = _folder(held_dir, image_size, train.classes)
            classes = list(train.classes)
        else:
            full = _folder(root, image_size)
            classes = list(full.classes)
            tr, te = stratified_split(list(full.targets), val_fraction, seed)
            train, test = Subset(full, tr), Subset(full, te)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"Dataset folder '{root}' holds no images in class subfolders ({exc}).") from None
    if len(classes) < 2:
        raise DataError(f"Dataset folder '{root}' has {len(classes)} class subfolder(s); a classifier needs at least 2.")
    return LoadedSplits(train, test, classes, image_size)
