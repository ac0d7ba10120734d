"""Per-architecture entropy layers as plain data (no torch), shared by the registry and builders.

Paths are submodule names of the *unwrapped* network (a builder that wraps it, e.g. in
``Normalized``, sets ``layer_prefix``). Roles follow the paper's Fig. 2 (shallow 1/2,
middle 1/2, deep 1/2); deep2 is the repair layer: the last pooling (or, for VGG, dense)
layer feeding the classifier, the paper's split point. Every table here is checked
against the real model in ``tests/test_loaders.py``.
"""

from __future__ import annotations

from typing import NamedTuple

Roles = tuple[tuple[str, str], ...]


class LayerTable(NamedTuple):
    globs: tuple[str, ...]  # model references, e.g. "torchvision:resnet*"
    layers: Roles
    summary: str


def _roles(*paths: str) -> Roles:
    return tuple(zip(("shallow1", "shallow2", "middle1", "middle2", "deep1", "deep2"), paths, strict=True))


def _vgg_pools(convs_per_stage: tuple[int, ...], batch_norm: bool) -> list[str]:
    """Indices of the five max-pools in torchvision's ``features`` (conv[-bn]-relu per conv, then a pool)."""
    per_conv, index, pools = (3 if batch_norm else 2), -1, []
    for convs in convs_per_stage:
        index += convs * per_conv + 1
        pools.append(f"features.{index}")
    return pools


def _vgg_tables() -> dict[str, LayerTable]:
    stages = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
    out = {}
    for arch, convs in stages.items():
        for bn in (False, True):
            name = f"{arch}_bn" if bn else arch
            out[name] = LayerTable(
                (f"torchvision:{name}",), _roles(*_vgg_pools(convs, bn), "classifier.4"),
                f"torchvision {name.upper().replace('_BN', ' (BN)')}: the five pooling stages, "
                "repair after the ReLU of fc7 (4096-d).")
    return out


# timm names whose class is timm's ResNet (layer1..4, global_pool): explicit, because
# "resnet*" also matches ResNetV2, BYOB nets (resnet51q, resnext26ts, seresnet33ts) and CLIP ResNets.
_TIMM_RESNETS = (
    "resnet10t", "resnet14t", "resnet18", "resnet18d", "resnet26", "resnet26d", "resnet26t", "resnet34", "resnet34d",
    "resnet50", "resnet50c", "resnet50d", "resnet50s", "resnet50t", "resnet50_gn", "resnet101", "resnet101c",
    "resnet101d", "resnet101s", "resnet152", "resnet152c", "resnet152d", "resnet152s", "resnet200", "resnet200d",
)
_TIMM_RESNET_GLOBS = tuple(g for n in _TIMM_RESNETS for g in (f"timm:{n}", f"timm:{n}.*")) + (
    "timm:resnetaa*", "timm:resnetblur*", "timm:resnetrs*", "timm:resnext50*", "timm:resnext101*",
    "timm:seresnet18*", "timm:seresnet34*", "timm:seresnet50*", "timm:seresnet101*", "timm:seresnet152*",
    "timm:seresnet200*", "timm:seresnet269*", "timm:seresnetaa*", "timm:seresnext26[dt]_*", "timm:seresnext50*",
    "timm:seresnext101*", "timm:seresnextaa*", "timm:ecaresnet*", "timm:ecaresnext*", "timm:wide_resnet*",
)

#: name → table; the registry exposes each as the LayerMap "<name>-layers".
LAYER_TABLES: dict[str, LayerTable] = {
    "resnet": LayerTable(
        ("torchvision:resnet*", "torchvision:wide_resnet*", "torchvision:resnext*"),
        _roles("layer1", "layer2", "layer3.0", "layer3", "layer4", "avgpool"),
        "torchvision ResNet / WideResNet / ResNeXt: stage ends, repair after avgpool (2048-d for ResNet50).",
    ),
    "timm-resnet": LayerTable(
        _TIMM_RESNET_GLOBS,
        _roles("layer1", "layer2", "layer3.0", "layer3", "layer4", "global_pool"),
        "timm ResNet family (ResNet, ResNeXt, SE/ECA, RS, wide): stage ends, repair after the global pool.",
    ),
    **_vgg_tables(),
    "googlenet": LayerTable(
        ("torchvision:googlenet",),
        _roles("maxpool2", "inception3b", "inception4b", "inception4e", "inception5b", "avgpool"),
        "torchvision GoogLeNet: inception blocks, repair after avgpool (1024-d).",
    ),
    "inception_v3": LayerTable(
        ("torchvision:inception_v3",),
        _roles("Mixed_5b", "Mixed_5d", "Mixed_6b", "Mixed_6e", "Mixed_7c", "avgpool"),
        "torchvision Inception v3: mixed blocks, repair after avgpool (2048-d).",
    ),
    "densenet": LayerTable(
        ("torchvision:densenet*",),
        _roles("features.denseblock1", "features.transition1", "features.transition2", "features.transition3",
               "features.denseblock4", "features.norm5"),
        "torchvision DenseNet: transitions, repair on the final feature map (pooled functionally, no module).",
    ),
    "mobilenet_v2": LayerTable(
        ("torchvision:mobilenet_v2",),
        _roles("features.3", "features.6", "features.10", "features.13", "features.17", "features.18"),
        "torchvision MobileNetV2: inverted-residual stage ends, repair on the last 1280-channel map.",
    ),
    "mobilenet_v3_large": LayerTable(
        ("torchvision:mobilenet_v3_large",),
        _roles("features.3", "features.6", "features.10", "features.12", "features.15", "avgpool"),
        "torchvision MobileNetV3-Large: stage ends, repair after avgpool (960-d).",
    ),
    "mobilenet_v3_small": LayerTable(
        ("torchvision:mobilenet_v3_small",),
        _roles("features.1", "features.3", "features.6", "features.8", "features.11", "avgpool"),
        "torchvision MobileNetV3-Small: stage ends, repair after avgpool (576-d).",
    ),
    "efficientnet": LayerTable(
        ("torchvision:efficientnet_b[0-7]",),
        _roles("features.2", "features.3", "features.4", "features.5", "features.7", "avgpool"),
        "torchvision EfficientNet B0–B7: MBConv stages, repair after avgpool.",
    ),
    "regnet": LayerTable(
        ("torchvision:regnet_*",),
        _roles("stem", "trunk_output.block1", "trunk_output.block2", "trunk_output.block3", "trunk_output.block4",
               "avgpool"),
        "torchvision RegNet X/Y: stem and the four stages, repair after avgpool.",
    ),
    "convnext": LayerTable(
        ("torchvision:convnext_*",),
        _roles("features.1", "features.3", "features.5.4", "features.5", "features.7", "avgpool"),
        "torchvision ConvNeXt: stage ends, repair after avgpool.",
    ),
    "wrn": LayerTable(
        ("wrn*",),
        _roles("block1.0", "block1", "block2.0", "block2", "block3", "pool"),
        "CIFAR WideResNet (wrn:34-10 …): groups, repair after the final BN-ReLU and global pool (640-d).",
    ),
}
