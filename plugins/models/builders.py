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
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


# --- CIFAR WideResNet (Zagoruyko & Komodakis 2016), as used by the paper -------------

class _WideBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv ×2 with an identity or 1×1 shortcut.

    When the shape changes, the shortcut takes the *pre-activated* input, as in the
    original WRN code.
    """

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
    """WRN-depth-k for 32×32 inputs: conv → block1..3 → bn → relu → pool → fc.

    These attribute names are the layer paths of ``plugins/layers/tables.py``; ``pool``
    (after the final BN-ReLU) is the repair layer.
    """

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
        self._init_weights()

    def _init_weights(self) -> None:
        """He init for convs and a zero bias head, as the WRN reference code does."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

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
        raise ModelError(f"WideResNet wrn:{arch} is invalid: depth − 4 must be a positive multiple of 6 "
                         "and width at least 1 (e.g. wrn:16-2, wrn:28-10, wrn:34-10).")
    return Normalized(WideResNet(depth, widen, num_classes, float(dropout)), CIFAR_MEAN, CIFAR_STD)


# --- torchvision and timm ------------------------------------------------------------

def _offline_error(ref: str, exc: Exception) -> ModelError:
    return ModelError(f"Pretrained weights for {ref} could not be downloaded ({type(exc).__name__}); "
                      "connect once to cache them, or pass local weights with --set model.checkpoint=FILE "
                      "and --set model.pretrained=false.")


def _classifier(net: nn.Module) -> tuple[str, nn.Module] | None:
    """The last Linear in registration order, else the last 1×1 conv (SqueezeNet's head)."""
    linears = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    return convs[-1] if convs else None


def replace_head(net: nn.Module, num_classes: int) -> nn.Module:
    """Swap the classifier layer for a fresh one with ``num_classes`` outputs (kept if it already fits)."""
    found = _classifier(net)
    if found is None:
        raise ModelError("Could not find the model's classifier layer to resize; pass a checkpoint that fits instead.")
    name, last = found
    if isinstance(last, nn.Linear):
        if last.out_features == num_classes:
            return net
        new: nn.Module = nn.Linear(last.in_features, num_classes, bias=last.bias is not None)
    else:
        assert isinstance(last, nn.Conv2d)
        if last.out_channels == num_classes:
            return net
        new = nn.Conv2d(last.in_channels, num_classes, 1, bias=last.bias is not None)
    parent_name, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, attr, new)
    return net


def _drop_aux_heads(net: nn.Module) -> None:
    """GoogLeNet / Inception v3 auxiliary heads only matter for ImageNet training: remove them."""
    if hasattr(net, "aux_logits"):
        net.aux_logits = False
    for attr in ("aux1", "aux2", "AuxLogits"):
        if getattr(net, attr, None) is not None:
            setattr(net, attr, None)


def _torchvision_weights(models, arch: str, pretrained: bool | str):
    if not pretrained:
        return None
    enum = models.get_model_weights(arch)
    if pretrained is True:
        return enum.DEFAULT
    try:
        return enum[str(pretrained)]
    except KeyError:
        names = [w.name for w in enum]
        raise ModelError(f"torchvision model '{arch}' has no weights '{pretrained}'; use one of {', '.join(names)}."
                         + did_you_mean(str(pretrained), names)) from None


def build_torchvision(arch: str | None, num_classes: int, pretrained: bool | str) -> nn.Module:
    """Any torchvision classification model by name; head resized; ImageNet normalisation inside."""
    from torchvision import models

    names = models.list_models(module=models)
    if arch and arch not in names and arch.lower() in names:
        arch = arch.lower()
    if not arch or arch not in names:
        raise ModelError(f"torchvision has no classification model '{arch}'." + did_you_mean(arch or "", names)
                         + " See `demtui show torchvision`.")
    weights = _torchvision_weights(models, arch, pretrained)
    kwargs: dict = {}
    if weights is None and arch in ("googlenet", "inception_v3"):
        # Pretrained builds insist on their own values for these; random ones skip the slow scipy init.
        kwargs = {"aux_logits": False, "init_weights": False}
    try:
        net = models.get_model(arch, weights=weights, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a failed download surfaces as many types
        if weights is None:
            raise ModelError(f"torchvision could not build '{arch}' ({type(exc).__name__}: {exc}).") from None
        raise _offline_error(f"torchvision:{arch}", exc) from None
    _drop_aux_heads(net)
    return Normalized(replace_head(net, num_classes), IMAGENET_MEAN, IMAGENET_STD)


def _timm_name(timm, arch: str | None, pretrained: bool | str) -> str:
    """Validate ``arch`` (an optional ``.tag`` included) and fold a string ``pretrained`` in as the tag."""
    if not arch or not timm.is_model(arch):
        raise ModelError(f"timm has no model '{arch}'." + did_you_mean(arch or "", timm.list_models())
                         + " Search them with `python -c \"import timm; print(timm.list_models('*resnet*'))\"`.")
    name = f"{arch}.{pretrained}" if isinstance(pretrained, str) and "." not in arch else arch
    if "." in name:
        tags = timm.list_pretrained(name.split(".", 1)[0] + ".*")
        if name not in tags:
            raise ModelError(f"timm model '{name.split('.', 1)[0]}' has no pretrained tag '{name.split('.', 1)[1]}'."
                             + did_you_mean(name, tags))
    return name


def build_timm(arch: str | None, num_classes: int, pretrained: bool | str) -> nn.Module:
    """Any timm model by name with a ``num_classes`` head; its own normalisation inside.

    A string ``pretrained`` is a timm weight tag (``a1_in1k`` → ``resnet50.a1_in1k``).
    """
    import timm

    name = _timm_name(timm, arch, pretrained)
    try:
        net = timm.create_model(name, pretrained=bool(pretrained), num_classes=num_classes)
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types
        if not pretrained:
            raise ModelError(f"timm could not build '{name}' ({type(exc).__name__}: {exc}).") from None
        raise _offline_error(f"timm:{name}", exc) from None
    cfg = getattr(net, "pretrained_cfg", None) or {}
    mean, std = tuple(cfg.get("mean") or IMAGENET_MEAN), tuple(cfg.get("std") or IMAGENET_STD)
    return Normalized(net, mean, std)


def model_input_size(arch: str, family: str | None = None) -> int:
    """The input side a model expects: 299 for Inception v3, timm's configured size, else 224.

    ``family`` ("torchvision" or "timm") settles names both libraries use; without it a
    name timm knows takes timm's size (harmless for torchvision's adaptive-pool nets).
    """
    if arch == "inception_v3":
        return 299
    if family == "torchvision":
        return 224
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

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Clones: safetensors refuses tensors that share storage (tied or viewed weights).
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        from demtui.store import file_mode

        os.chmod(tmp, file_mode())  # mkstemp made it 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import warnings

    with warnings.catch_warnings():  # torch's multi-line UserWarnings would precede our one sentence
        warnings.simplefilter("ignore")
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"Checkpoint '{path}' holds no state dict of tensors; "
                         "save one with torch.save(model.state_dict(), FILE) or use a .safetensors file.")
    return obj


#: Keys a checkpoint may carry that our builds drop on purpose (auxiliary heads).
_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.", "net.aux1.", "net.aux2.", "net.AuxLogits.")


def _fit_keys(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Undo DataParallel/compile prefixes and fit weights of a net inside or outside a Normalized wrapper."""
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    expected = set(own)
    if not set(state) & (expected - {"mean", "std"}):
        if any(k.startswith("net.") for k in expected):
            state = {(k if k in ("mean", "std") else f"net.{k}"): v for k, v in state.items()}
        elif any(k.startswith("net.") for k in state):
            state = {k.removeprefix("net."): v for k, v in state.items() if k not in ("mean", "std")}
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(_AUX_PREFIXES)}
    # Normalisation buffers belong to the wrapper and older checkpoints lack BN counters: keep ours.
    for key, value in own.items():
        if key not in state and (key in ("mean", "std") or key.endswith("num_batches_tracked")):
            state[key] = value
    return state


def load_checkpoint(module: nn.Module, path: str | Path) -> None:
    """Load weights (safetensors, or .pt/.pth/.bin with weights_only=True) into ``module``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"Checkpoint '{path}' does not exist; check the path.")
    try:
        state = _read_state(path)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one sentence
        raise ModelError(f"Checkpoint '{path}' could not be read ({type(exc).__name__}); "
                         "use a .safetensors file or a .pt/.pth state dict.") from None
    module.load_state_dict(fit_state(path, state, module.state_dict()))


def fit_state(path: Path, state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with its keys fitted to ``own``, or a ModelError saying why it does not fit
    (shapes only: the preflight calls it with meta tensors read from a safetensors header)."""
    state = _fit_keys(state, own)
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise ModelError(f"Checkpoint '{path.name}' does not fit the model: '{k}' has shape {tuple(state[k].shape)} "
                         f"but the model expects {tuple(own[k].shape)} (another architecture or number of classes?).")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        k = (missing or unexpected)[0]
        what = "lacks the key" if missing else "has the extra key"
        raise ModelError(f"Checkpoint '{path.name}' does not fit the model: it {what} '{k}' "
                         f"({len(missing)} missing, {len(unexpected)} extra; another architecture?).")
    return state
