"""Per-architecture entropy layers as plain data (no torch), shared by the registry and builders.

Paths are submodule names of the *unwrapped* network. Roles follow the paper's Fig. 2
(shallow 1/2, middle 1/2, deep 1/2); deep2 is the repair layer: the last pooling or
dense layer before the classifier, matching the authors' split points.
"""

from __future__ import annotations

#: name → (model-reference globs, ((role, path), ...), summary)
LAYER_TABLES: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...], str]] = {
    "resnet": (
        ("torchvision:resnet*", "torchvision:wide_resnet*", "torchvision:resnext*"),
        (("shallow1", "layer1"), ("shallow2", "layer2"), ("middle1", "layer3.0"), ("middle2", "layer3"),
         ("deep1", "layer4"), ("deep2", "avgpool")),
        "torchvision ResNet / WideResNet / ResNeXt: stage ends, repair after avgpool (2048-d for ResNet50).",
    ),
    "timm-resnet": (
        ("timm:resnet*", "timm:wide_resnet*", "timm:resnext*"),
        (("shallow1", "layer1"), ("shallow2", "layer2"), ("middle1", "layer3.0"), ("middle2", "layer3"),
         ("deep1", "layer4"), ("deep2", "global_pool")),
        "timm ResNet family: stage ends, repair after the global pool.",
    ),
    "googlenet": (
        ("torchvision:googlenet",),
        (("shallow1", "maxpool2"), ("shallow2", "inception3b"), ("middle1", "inception4b"),
         ("middle2", "inception4e"), ("deep1", "inception5b"), ("deep2", "avgpool")),
        "torchvision GoogLeNet: inception blocks, repair after avgpool (1024-d).",
    ),
    "vgg": (
        ("torchvision:vgg*",),
        (("shallow1", "features.4"), ("shallow2", "features.9"), ("middle1", "features.18"),
         ("middle2", "avgpool"), ("deep1", "classifier.1"), ("deep2", "classifier.4")),
        "torchvision VGG: pooling stages, repair after the ReLU of fc7 (4096-d).",
    ),
    "mobilenet_v2": (
        ("torchvision:mobilenet_v2",),
        (("shallow1", "features.3"), ("shallow2", "features.6"), ("middle1", "features.10"),
         ("middle2", "features.13"), ("deep1", "features.18"), ("deep2", "features")),
        "torchvision MobileNetV2: inverted-residual stages; repair on the last feature map.",
    ),
    "wrn": (
        ("wrn*",),
        (("shallow1", "block1.0"), ("shallow2", "block1"), ("middle1", "block2.0"), ("middle2", "block2"),
         ("deep1", "block3"), ("deep2", "pool")),
        "CIFAR WideResNet (wrn:34-10 …): groups, repair after the final BN-ReLU and global pool (640-d).",
    ),
}
