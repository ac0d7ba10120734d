"""Model construction and checkpoint I/O for the built-in model sources.

Every built model takes float images in [0, 1]: normalisation lives inside the model
(``Normalized``), so attacks and the ε-ball are always in pixel space.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from demtui.errors import ModelError, did_you_mean

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


class Normalized(nn.Module):
    """Normalise [0, 1] images before ``net``; the wrapped network stays addressable as ``net``."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


# --- CIFAR WideResNet (Zagoruyko & Komodakis 2016), as used by the paper -------------

class _WideBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv ×2 with an identity or 1×1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-depth-k for 32×32 inputs; ``pool`` (after the final BN-ReLU) is the repair layer."""

    def __init__(self, depth: int, widen: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)

        def group(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(*[_WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, dropout)
                                   for i in range(n)])

        self.block1 = group(widths[0], widths[1], 1)
        self.block2 = group(widths[1], widths[2], 2)
        self.block3 = group(widths[2], widths[3], 2)
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv(x))))
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(x))), 1))


def build_wrn(arch: str, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """``arch`` is "depth-width", e.g. 28-10 or 34-10 (the paper) or 16-2 (tests)."""
    try:
        depth, widen = (int(v) for v in arch.split("-"))
    except ValueError:
        raise ModelError(f"WideResNet architecture '{arch}' is not depth-width; use e.g. wrn:28-10.") from None
    if depth < 10 or (depth - 4) % 6 or widen < 1:
        raise ModelError(f"WideResNet depth {depth} is invalid; depth − 4 must be a positive multiple of 6 "
                         "(e.g. 16, 28, 34, 40).")
    return Normalized(WideResNet(depth, widen, num_classes, dropout), CIFAR_MEAN, CIFAR_STD)


# --- torchvision and timm ------------------------------------------------------------

def _offline_error(family: str, arch: str, exc: Exception) -> ModelError:
    return ModelError(f"Pretrained weights for {family}:{arch} could not be loaded ({type(exc).__name__}: {exc}); "
                      "check the network or pass local weights with --set model.checkpoint=FILE.")


def replace_head(net: nn.Module, num_classes: int) -> nn.Module:
    """Swap the last classifier layer (Linear, or 1×1 conv as in SqueezeNet) for ``num_classes`` outputs."""
    last_name, last = None, None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)):
            last_name, last = name, module
    if last is None:
        raise ModelError("Could not find the model's classifier layer to resize; pass a checkpoint that fits instead.")
    out = last.out_features if isinstance(last, nn.Linear) else last.out_channels
    if out == num_classes:
        return net
    if isinstance(last, nn.Linear):
        new: nn.Module = nn.Linear(last.in_features, num_classes, bias=last.bias is not None)
    else:
        new = nn.Conv2d(last.in_channels, num_classes, 1, bias=last.bias is not None)
    parent_name, _, attr = last_name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    setattr(parent, attr, new)
    return net


def build_torchvision(arch: str | None, num_classes: int, pretrained: bool | str) -> nn.Module:
    """Any torchvision classification model by name; head resized; ImageNet normalisation inside."""
    from torchvision import models

    names = models.list_models(module=models)
    if not arch or arch not in names:
        raise ModelError(f"torchvision has no classification model '{arch}'." + did_you_mean(arch or "", names)
                         + " See `demtui show torchvision`.")
    kwargs: dict = {}
    if arch in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = False
    weights = None
    if pretrained:
        enum = models.get_model_weights(arch)
        if pretrained is True:
            weights = enum.DEFAULT
        else:
            try:
                weights = enum[str(pretrained)]
            except KeyError:
                raise ModelError(f"torchvision model '{arch}' has no weights '{pretrained}'."
                                 + did_you_mean(str(pretrained), [w.name for w in enum])) from None
        kwargs.pop("init_weights", None)
    try:
        net = models.get_model(arch, weights=weights, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        if weights is None:
            raise ModelError(f"torchvision could not build '{arch}': {exc}.") from None
        raise _offline_error("torchvision", arch, exc) from None
    return Normalized(replace_head(net, num_classes), IMAGENET_MEAN, IMAGENET_STD)


def build_timm(arch: str | None, num_classes: int, pretrained: bool | str) -> nn.Module:
    """Any timm model by name with a ``num_classes`` head; its own normalisation inside."""
    import timm

    if not arch or not timm.is_model(arch):
        raise ModelError(f"timm has no model '{arch}'." + did_you_mean(arch or "", timm.list_models())
                         + " List them with `python -c 'import timm; print(timm.list_models())'`.")
    try:
        net = timm.create_model(arch, pretrained=bool(pretrained), num_classes=num_classes)
    except (OSError, RuntimeError, ValueError) as exc:
        raise _offline_error("timm", arch, exc) from None
    cfg = getattr(net, "pretrained_cfg", {}) or {}
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    return Normalized(net, mean, std)


def model_input_size(arch: str) -> int:
    """The input side a family expects (299 for Inception v3, else timm's config or 224)."""
    if arch == "inception_v3":
        return 299
    try:
        import timm

        if timm.is_model(arch):
            size = timm.get_pretrained_cfg_value(arch, "input_size")
            if size:
                return int(size[-1])
    except Exception:  # noqa: BLE001 - a size hint must never fail a build
        pass
    return 224


# --- checkpoints ----------------------------------------------------------------------

def save_checkpoint(module: nn.Module, path: str | Path) -> Path:
    """Write the state dict as safetensors, atomically (a crash never leaves half a file)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"Checkpoint '{path}' holds no state dict of tensors; save one with torch.save(model.state_dict()).")
    return obj


def _fit_keys(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Accept DataParallel's 'module.' prefix and weights of the net inside or outside a Normalized wrapper."""
    if any(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if not set(state) & expected:
        if any(k.startswith("net.") for k in expected):
            state = {f"net.{k}": v for k, v in state.items()}
        elif any(k.startswith("net.") for k in state):
            state = {k.removeprefix("net."): v for k, v in state.items()}
    return state


def load_checkpoint(module: nn.Module, path: str | Path) -> None:
    """Load weights (safetensors, or .pt/.pth with weights_only=True) into ``module``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"Checkpoint '{path}' does not exist; check the path.")
    try:
        state = _read_state(path)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one sentence
        raise ModelError(f"Checkpoint '{path}' could not be read ({type(exc).__name__}); "
                         "use a .safetensors file or a .pt state dict.") from None
    own = module.state_dict()
    state = _fit_keys(state, set(own))
    # Normalisation buffers belong to the wrapper, not to the weights: keep ours if absent.
    for key in ("mean", "std"):
        if key in own and key not in state:
            state[key] = own[key]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise ModelError(f"Checkpoint '{path.name}' does not fit the model: '{k}' has shape {tuple(state[k].shape)}, "
                         f"the model expects {tuple(own[k].shape)} (another architecture or number of classes?).")
    if missing or unexpected:
        k = (missing or unexpected)[0]
        what = "lacks" if missing else "has an extra"
        raise ModelError(f"Checkpoint '{path.name}' does not fit the model: it {what} key '{k}' "
                         "(another architecture?).")
    module.load_state_dict(state)
