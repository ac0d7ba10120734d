"""torchvision datasets and image folders, as uint8 images of one square size.

Users who are online get ``download=True``; offline, a missing dataset is one sentence
that says where demtui looked and how to fix it. Splits that the source does not define
(EuroSAT, Caltech101, a flat image folder) are made deterministically from a seed,
stratified per class, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from demtui.data import TensorImageDataset
from demtui.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
#: Materialise a resized CIFAR-10 in memory up to this many bytes; beyond, resize per item.
_EAGER_BYTES = 1 << 30
#: Held-out share of the sources that define no test split (EuroSAT, Caltech101).
_HELD_OUT = 0.2


@dataclass
class LoadedSplits:
    """Items are (uint8 tensor C×H×W of ``image_size``, int label)."""

    train: Dataset
    test: Dataset
    classes: list[str]
    image_size: int


def _to_rgb(image: Any) -> Any:
    """Caltech101 has grayscale images: every model here takes three channels."""
    return image.convert("RGB")


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def _transform(image_size: int) -> Any:
    """PIL → uint8 C×H×W: shorter side to ``image_size``, then a centre crop (module-level: picklable)."""
    from torchvision import transforms as T

    return T.Compose([_to_rgb, T.Resize(image_size), T.CenterCrop(image_size), T.PILToTensor()])


def _missing(name: str, root: Path, download: bool, exc: Exception) -> DataError:
    if download:
        return DataError(f"{name} is not in {root} and could not be downloaded ({type(exc).__name__}; offline?); "
                         "download it once with network or point --set dataset.root=DIR at a copy.")
    return DataError(f"{name} is not in {root} (or is incomplete) and download is off; "
                     "pass --set dataset.download=true or point --set dataset.root=DIR at a copy.")


def stratified_split(labels: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Per-class seeded split: every class keeps ≥ 1 training item and gets its share of held-out ones."""
    g = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    train, held = [], []
    for label in sorted(by_class):
        idx = by_class[label]
        order = [idx[j] for j in torch.randperm(len(idx), generator=g).tolist()]
        k = min(len(idx) - 1, round(len(idx) * val_fraction))
        held += order[:k]
        train += order[k:]
    return sorted(train), sorted(held)


class ResizedTensors(Dataset):
    """uint8 N×C×h×w images resized to ``size`` on access.

    Deliberately no ``tensors`` attribute: take_subset would slice the unresized images.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: int) -> None:
        self.x, self.y, self.size = x, y.long(), size

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return _resize(self.x[i:i + 1], self.size)[0], int(self.y[i])


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square uint8 batch → ``size``×``size`` (antialiased bilinear, like PIL's Resize)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                                          align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def _cifar_split(ds: Any, image_size: int) -> Dataset:
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # N×32×32×3 → N×3×32×32
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    if x.shape[0] * 3 * image_size * image_size > _EAGER_BYTES:
        return ResizedTensors(x, y, image_size)
    return TensorImageDataset(torch.cat([_resize(x[i:i + 4096], image_size) for i in range(0, len(x), 4096)]), y)


def load_cifar10(root: Path, download: bool, image_size: int) -> LoadedSplits:
    """CIFAR-10's own train/test split, held as tensors (no per-item PIL work at 32×32)."""
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(str(root), train=True, download=download)
        test = CIFAR10(str(root), train=False, download=download)
    except Exception as exc:  # noqa: BLE001 - offline, corrupt or absent: one sentence
        raise _missing("CIFAR-10", root, download, exc) from None
    return LoadedSplits(_cifar_split(train, image_size), _cifar_split(test, image_size), list(train.classes),
                        image_size)


def load_eurosat(root: Path, download: bool, image_size: int, seed: int = 0) -> LoadedSplits:
    """EuroSAT RGB (64×64, 10 classes); no official split, so a seeded stratified 80/20 one."""
    from torchvision.datasets import EuroSAT

    try:
        full = EuroSAT(str(root), transform=_transform(image_size), download=download)
    except Exception as exc:  # noqa: BLE001
        raise _missing("EuroSAT", root, download, exc) from None
    train, test = stratified_split(list(full.targets), _HELD_OUT, seed)
    return LoadedSplits(Subset(full, train), Subset(full, test), list(full.classes), image_size)


class ImageFiles(Dataset):
    """(image path, label) pairs read with PIL and ``transform``."""

    def __init__(self, items: list[tuple[Path, int]], transform: Any) -> None:
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as image:
            return self.transform(image), label


def load_caltech101(root: Path, download: bool, image_size: int, seed: int = 0) -> LoadedSplits:
    """Caltech101 (101 classes, some grayscale images made RGB); seeded 80/20 split per class.

    torchvision finds and downloads the files, but its items import scipy (for annotations
    we do not use), so images are read here.
    """
    from torchvision.datasets import Caltech101

    try:
        ds = Caltech101(str(root), target_type="category", download=download)
    except Exception as exc:  # noqa: BLE001
        raise _missing("Caltech101", root, download, exc) from None
    folder = Path(ds.root) / "101_ObjectCategories"
    items = [(folder / ds.categories[y] / f"image_{i:04d}.jpg", int(y)) for i, y in zip(ds.index, ds.y, strict=True)]
    full = ImageFiles(items, _transform(image_size))
    train, test = stratified_split(list(ds.y), _HELD_OUT, seed)
    return LoadedSplits(Subset(full, train), Subset(full, test), list(ds.categories), image_size)


def _folder(path: Path, image_size: int) -> Any:
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(path), transform=_transform(image_size), is_valid_file=_is_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"Dataset folder '{path}' holds no images in class subfolders ({exc}); "
                        "put each class's images (.jpg, .png, …) in its own subfolder.") from None


def _check_classes(root: Path, classes: list[str]) -> None:
    if len(classes) < 2:
        raise DataError(f"Dataset folder '{root}' has {len(classes)} class subfolder(s); "
                        "a classifier needs at least 2, one subfolder per class.")


def load_image_folder(root: Path, image_size: int, val_fraction: float, seed: int = 0) -> LoadedSplits:
    """ImageNet-style ``root/train`` + ``root/val`` (or ``test``), or one folder split by ``val_fraction``.

    A lone ``root/train`` is split like a flat folder. Class names are the subfolder names.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"Dataset folder '{root}' does not exist; "
                        "pass --set dataset.root=DIR with one subfolder of images per class.")
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction {val_fraction} is out of range; use a share between 0 and 1, e.g. 0.2.")
    held_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if (root / "train").is_dir() and held_dir is not None:
        train, test = _folder(root / "train", image_size), _folder(held_dir, image_size)
        _check_classes(root / "train", train.classes)
        if test.classes != train.classes:
            raise DataError(f"The class folders of {held_dir} differ from those of {root / 'train'}; "
                            "give both splits the same class subfolders.")
        return LoadedSplits(train, test, list(train.classes), image_size)
    source = root / "train" if (root / "train").is_dir() else root
    full = _folder(source, image_size)
    _check_classes(source, full.classes)
    tr, te = stratified_split(list(full.targets), val_fraction, seed)
    return LoadedSplits(Subset(full, tr), Subset(full, te), list(full.classes), image_size)
