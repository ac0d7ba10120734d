"""Model builders behind the built-in model sources (heavy: imports torch)."""

from __future__ import annotations

from typing import Any

from demtui.contracts import BuiltModel


def _pretrained(params: dict[str, Any]) -> bool | str:
    value = str(params.get("pretrained", "false")).strip()
    lowered = value.lower()
    if lowered in ("false", "0", "no", "off", ""):
        return False
    return True if lowered in ("true", "1", "yes", "on", "default") else value


def build_smallcnn(arch: str | None, num_classes: int, params: dict[str, Any], ctx: Any) -> BuiltModel:
    from demtui.plugins.models.small_cnn import SMALL_CNN_LAYERS, SMALL_CNN_REPAIR_LAYER, SmallCNN

    module = SmallCNN(num_classes=num_classes, width=params.get("width", 32))
    return BuiltModel(module=module, input_size=32, layers=dict(SMALL_CNN_LAYERS), repair_role=SMALL_CNN_REPAIR_LAYER)


def build_wrn(arch: str | None, num_classes: int, params: dict[str, Any], ctx: Any) -> BuiltModel:
    from demtui.plugins.models import builders
    from demtui.plugins.models.layers import resolve_layers

    module = builders.build_wrn(arch or "28-10", num_classes, dropout=params.get("dropout", 0.0))
    layers = resolve_layers(module.net, "wrn")
    return BuiltModel(module=module, input_size=32, layers={r: "net." + p for r, p in _roles(layers).items()},
                      repair_role=layers.get("repair", "deep2"), layer_prefix="net.")


def _family(build, arch: str | None, num_classes: int, params: dict[str, Any]) -> BuiltModel:
    from demtui.plugins.models import builders
    from demtui.plugins.models.layers import resolve_layers

    pretrained = _pretrained(params)
    module = build(arch, num_classes, pretrained)
    inner = module.net if isinstance(module, builders.Normalized) else module
    prefix = "net." if inner is not module else ""
    layers = resolve_layers(inner, arch or "")
    return BuiltModel(module=module, input_size=builders.model_input_size(arch or ""),
                      layers={r: prefix + p for r, p in _roles(layers).items()},
                      repair_role=layers.get("repair", "deep2"), layer_prefix=prefix,
                      weights="pretrained" if pretrained else "random")


def build_torchvision(arch: str | None, num_classes: int, params: dict[str, Any], ctx: Any) -> BuiltModel:
    from demtui.plugins.models.builders import build_torchvision as build

    return _family(build, arch, num_classes, params)


def build_timm(arch: str | None, num_classes: int, params: dict[str, Any], ctx: Any) -> BuiltModel:
    from demtui.plugins.models.builders import build_timm as build

    return _family(build, arch, num_classes, params)


def _roles(layers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in layers.items() if k != "repair"}
