"""Dataset loaders behind the built-in dataset sources (heavy: imports torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demtui.contracts import DatasetSplits
from demtui.data import TensorImageDataset
from demtui.errors import DataError


def load_shapes(params: dict[str, Any], ctx: Any) -> DatasetSplits:
    from demtui.plugins.datasets.shapes_gen import SHAPE_CLASSES, generate_shapes

    size, seed = params["image_size"], params["seed"]
    contrast = (params["contrast_min"], params["contrast_max"])
    if contrast[0] > contrast[1]:
        raise DataError("Dataset 'shapes' needs contrast_min <= contrast_max; fix the --set values.")
    x_train, y_train = generate_shapes(params["train_size"], seed=seed, image_size=size, contrast=contrast)
    x_test, y_test = generate_shapes(params["test_size"], seed=seed + 1_000_003, image_size=size, contrast=contrast)
    return DatasetSplits(TensorImageDataset(x_train, y_train), TensorImageDataset(x_test, y_test),
                         list(SHAPE_CLASSES), size)


def _root(params: dict[str, Any]) -> Path:
    return Path(str(params["root"])).expanduser()


def _convert(splits: Any) -> DatasetSplits:
    return DatasetSplits(splits.train, splits.test, list(splits.classes), int(splits.image_size))


def load_cifar10(params: dict[str, Any], ctx: Any) -> DatasetSplits:
    from demtui.plugins.datasets.vision import load_cifar10 as load

    return _convert(load(_root(params), download=params["download"], image_size=params["image_size"]))


def load_eurosat(params: dict[str, Any], ctx: Any) -> DatasetSplits:
    from demtui.plugins.datasets.vision import load_eurosat as load

    return _convert(load(_root(params), download=params["download"], image_size=params["image_size"]))


def load_caltech101(params: dict[str, Any], ctx: Any) -> DatasetSplits:
    from demtui.plugins.datasets.vision import load_caltech101 as load

    return _convert(load(_root(params), download=params["download"], image_size=params["image_size"]))


def load_image_folder(params: dict[str, Any], ctx: Any) -> DatasetSplits:
    from demtui.plugins.datasets.vision import load_image_folder as load

    if not params.get("root"):
        raise DataError("Dataset 'imagefolder' needs a root folder; pass --set dataset.root=/path/to/classes.")
    return _convert(load(_root(params), image_size=params["image_size"], val_fraction=params["val_fraction"],
                         seed=getattr(ctx, "seed", 0)))
