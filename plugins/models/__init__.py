"""Built-in model sources: the offline SmallCNN, CIFAR WideResNets, torchvision, timm.

Metadata only (no torch import); the builders live in ``entries.py``.
"""

from demtui.components import ModelSource
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

_ENTRY = "demtui.plugins.models.entries"


@hookimpl
def demtui_models() -> list[ModelSource]:
    return [
        ModelSource(
            name="smallcnn",
            summary="A small fast CNN for the offline quickstart (trains in seconds on a CPU).",
            entry=f"{_ENTRY}:build_smallcnn",
            params=schema(Param("width", "int", 32, "Channels of the first stage (doubles per stage).", min=4, max=512)),
        ),
        ModelSource(
            name="wrn",
            summary="CIFAR-style WideResNet as in the paper (wrn:28-10, wrn:34-10; wrn:16-2 for tests).",
            entry=f"{_ENTRY}:build_wrn",
            family=True,
            examples=("wrn:34-10", "wrn:28-10", "wrn:16-2"),
            params=schema(Param("dropout", "float", 0.0, "Dropout inside wide blocks.", min=0, max=1)),
        ),
        ModelSource(
            name="torchvision",
            summary="Any torchvision classification model by name; head resized to the dataset.",
            entry=f"{_ENTRY}:build_torchvision",
            family=True,
            examples=("torchvision:resnet50", "torchvision:vgg19", "torchvision:googlenet"),
        ),
        ModelSource(
            name="timm",
            summary="Any timm model by name; head resized to the dataset.",
            entry=f"{_ENTRY}:build_timm",
            family=True,
            examples=("timm:wide_resnet50_2", "timm:resnet18"),
        ),
    ]
