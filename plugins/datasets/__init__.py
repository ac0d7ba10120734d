"""Built-in dataset sources: the offline shapes set, torchvision sets and ImageFolder.

Metadata only (no torch import); loaders live in ``entries.py``.
"""

from demtui.components import DatasetSource
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

_ENTRY = "demtui.plugins.datasets.entries"
_ROOT = Param("root", "str", "~/.cache/demtui/data", "Where the data lives (or is downloaded to).")
_DOWNLOAD = Param("download", "bool", True, "Download when missing (needs network once).")


#: Metadata copies of the class names (loaders report the same lists; tests/test_tui_allday.py checks shapes).
SHAPES = ("circle", "ring", "square", "frame", "diamond", "triangle", "plus", "cross", "hbar", "vbar")
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
EUROSAT = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake")


def _size(default: int) -> Param:
    return Param("image_size", "int", default, "Square image size fed to the model.", min=8, max=1024)


@hookimpl
def demtui_datasets() -> list[DatasetSource]:
    return [
        DatasetSource(
            name="shapes",
            summary="Offline synthetic 10-class shapes-on-clutter set, generated from a seed (ships with demtui).",
            entry=f"{_ENTRY}:load_shapes",
            offline=True,
            classes=SHAPES,
            params=schema(
                Param("train_size", "int", 20000, "Training images to generate.", min=10),
                Param("test_size", "int", 2000, "Test images to generate.", min=10),
                _size(32),
                Param("seed", "int", 0, "Generation seed (train uses seed, test seed+1).", min=0),
                Param("contrast_min", "float", 0.15, "Smallest colour offset of a shape from its background.",
                      min=0, max=1, min_inclusive=False),
                Param("contrast_max", "float", 0.35, "Largest colour offset of a shape from its background.",
                      min=0, max=1, min_inclusive=False),
            ),
        ),
        DatasetSource(name="cifar10", summary="CIFAR-10 through torchvision (32×32, 10 classes).",
                      entry=f"{_ENTRY}:load_cifar10", classes=CIFAR10, params=schema(_ROOT, _DOWNLOAD, _size(32))),
        DatasetSource(name="eurosat", summary="EuroSAT RGB through torchvision (10 land-use classes).",
                      entry=f"{_ENTRY}:load_eurosat", classes=EUROSAT, params=schema(_ROOT, _DOWNLOAD, _size(64))),
        DatasetSource(name="caltech101", summary="Caltech101 through torchvision (deterministic 80/20 split).",
                      entry=f"{_ENTRY}:load_caltech101", num_classes=101, params=schema(_ROOT, _DOWNLOAD, _size(224))),
        DatasetSource(
            name="imagefolder",
            summary="Any folder of class subfolders (ImageNet, ASL Alphabet, your own); train/ and val/ if present.",
            entry=f"{_ENTRY}:load_image_folder",
            params=schema(
                Param("root", "str", None, "Folder with one subfolder per class.", nullable=True),
                _size(224),
                Param("val_fraction", "float", 0.2, "Held-out share when there is no val/ folder.", min=0, max=1, min_inclusive=False),
            ),
        ),
    ]
