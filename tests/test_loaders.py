"""Model builders, checkpoints, layer maps and dataset loaders, all offline."""

from __future__ import annotations

import fnmatch
import functools
import pickle
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from demtui.components import ROLES
from demtui.data import TensorImageDataset, take_subset
from demtui.errors import DataError, ModelError
from demtui.plugins.datasets import vision
from demtui.plugins.datasets.vision import load_cifar10, load_image_folder, stratified_split
from demtui.plugins.layers.tables import LAYER_TABLES
from demtui.plugins.models import builders
from demtui.plugins.models.layers import resolve_layers
from demtui.plugins.models.small_cnn import SmallCNN

# --- datasets ---------------------------------------------------------------------------


def _image_folder(root: Path, classes: int, per_class: int) -> None:
    from PIL import Image

    for c in range(classes):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            mode = "L" if i == 0 else "RGB"  # a grayscale image must come out as 3 channels
            Image.new(mode, (20 + i, 16), color=40 * c if mode == "L" else (40 * c, 10 * i, 100)).save(d / f"{i}.png")
        (d / "notes.txt").write_text("not an image")


def test_image_folder_split_is_stratified_and_deterministic(tmp_path: Path) -> None:
    _image_folder(tmp_path, classes=3, per_class=5)
    a = load_image_folder(tmp_path, image_size=12, val_fraction=0.4, seed=1)
    b = load_image_folder(tmp_path, image_size=12, val_fraction=0.4, seed=1)
    assert a.classes == ["class0", "class1", "class2"] and a.image_size == 12
    assert len(a.train) == 9 and len(a.test) == 6
    assert a.train.indices == b.train.indices and a.test.indices == b.test.indices
    assert not set(a.train.indices) & set(a.test.indices)
    for i in range(len(a.train)):
        x, y = a.train[i]
        assert x.dtype == torch.uint8 and x.shape == (3, 12, 12) and isinstance(y, int)
    assert sorted(a.test[i][1] for i in range(len(a.test))) == [0, 0, 1, 1, 2, 2]
    x, _ = take_subset(a.test, 4, seed=0)
    assert x.shape == (4, 3, 12, 12) and x.dtype == torch.uint8


def test_image_folder_with_train_and_val(tmp_path: Path) -> None:
    _image_folder(tmp_path / "train", classes=2, per_class=3)
    _image_folder(tmp_path / "val", classes=2, per_class=1)
    splits = load_image_folder(tmp_path, image_size=8, val_fraction=0.2)
    assert len(splits.train) == 6 and len(splits.test) == 2 and splits.classes == ["class0", "class1"]
    assert splits.test[1][0].shape == (3, 8, 8)


def test_image_folder_with_only_a_train_folder_is_split(tmp_path: Path) -> None:
    _image_folder(tmp_path / "train", classes=2, per_class=4)
    splits = load_image_folder(tmp_path, image_size=8, val_fraction=0.25, seed=3)
    assert splits.classes == ["class0", "class1"] and len(splits.train) == 6 and len(splits.test) == 2


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope", image_size=8, val_fraction=0.2)
    _image_folder(tmp_path / "one", classes=1, per_class=2)
    with pytest.raises(DataError, match="at least 2"):
        load_image_folder(tmp_path / "one", image_size=8, val_fraction=0.2)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_image_folder(tmp_path / "empty", image_size=8, val_fraction=0.2)
    _image_folder(tmp_path / "two", classes=2, per_class=2)
    with pytest.raises(DataError, match="val_fraction"):
        load_image_folder(tmp_path / "two", image_size=8, val_fraction=1.0)
    _image_folder(tmp_path / "mixed" / "train", classes=2, per_class=2)
    _image_folder(tmp_path / "mixed" / "val", classes=3, per_class=1)
    with pytest.raises(DataError, match="differ"):
        load_image_folder(tmp_path / "mixed", image_size=8, val_fraction=0.2)


def test_stratified_split_keeps_every_class_in_training() -> None:
    train, held = stratified_split([0, 0, 0, 0, 1], 0.5, seed=0)
    assert len(held) == 2 and 4 in train and sorted(train + held) == [0, 1, 2, 3, 4]
    assert stratified_split([0, 1] * 10, 0.2, seed=5) == stratified_split([0, 1] * 10, 0.2, seed=5)


def test_cifar_missing_offline_names_the_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path)) as info:
        load_cifar10(tmp_path, download=False, image_size=32)
    assert "download is off" in str(info.value) and "dataset.root" in str(info.value)


def _fake_cifar(root: Path, per_batch: int) -> None:
    """torchvision's on-disk CIFAR-10 layout with a few random images per batch."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, per_batch)]}
        (base / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (base / "batches.meta").write_bytes(pickle.dumps(meta))


def test_cifar_from_disk_becomes_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as cifar

    _fake_cifar(tmp_path, per_batch=4)
    with pytest.raises(DataError):  # md5 sums do not match: torchvision calls the copy corrupt
        load_cifar10(tmp_path, download=False, image_size=32)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    splits = load_cifar10(tmp_path, download=False, image_size=32)
    assert isinstance(splits.train, TensorImageDataset) and len(splits.train) == 20 and len(splits.test) == 4
    assert splits.classes[0] == "airplane" and len(splits.classes) == 10
    x, y = splits.test[0]
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())
    assert torch.equal(x, torch.from_numpy(raw["data"][0].reshape(3, 32, 32))) and y == raw["labels"][0]
    big = load_cifar10(tmp_path, download=False, image_size=48)
    assert big.train[0][0].shape == (3, 48, 48) and big.train[0][0].dtype == torch.uint8
    monkeypatch.setattr(vision, "_EAGER_BYTES", 0)  # full-size CIFAR at 224 would not fit: resize per item
    lazy = load_cifar10(tmp_path, download=False, image_size=48)
    assert not hasattr(lazy.train, "tensors") and torch.equal(lazy.train[3][0], big.train[3][0])


def test_eurosat_from_disk_is_split_per_class(tmp_path: Path) -> None:
    from demtui.plugins.datasets.vision import load_eurosat

    with pytest.raises(DataError, match="EuroSAT is not in"):
        load_eurosat(tmp_path, download=False, image_size=16)
    _image_folder(tmp_path / "eurosat" / "2750", classes=2, per_class=5)  # torchvision's layout
    a, b = (load_eurosat(tmp_path, download=False, image_size=16) for _ in range(2))
    assert a.classes == ["class0", "class1"] and len(a.train) == 8 and len(a.test) == 2
    assert a.test.indices == b.test.indices and a.test[0][0].shape == (3, 16, 16)


def test_caltech101_from_disk_reads_grayscale_as_rgb(tmp_path: Path) -> None:
    """torchvision's Caltech101 items import scipy; the loader reads the files itself."""
    from PIL import Image

    from demtui.plugins.datasets.vision import load_caltech101

    with pytest.raises(DataError, match="Caltech101 is not in"):
        load_caltech101(tmp_path, download=False, image_size=16)
    base = tmp_path / "caltech101" / "101_ObjectCategories"
    for c, name in enumerate(["BACKGROUND_Google", "accordion", "ant"]):
        (base / name).mkdir(parents=True)
        for i in range(1, 6):
            Image.new("L" if i % 2 else "RGB", (24, 20), color=30 * c if i % 2 else (30 * c, 0, 0)).save(
                base / name / f"image_{i:04d}.jpg")
    splits = load_caltech101(tmp_path, download=False, image_size=16)
    assert splits.classes == ["accordion", "ant"] and len(splits.train) == 8 and len(splits.test) == 2
    labels = sorted(splits.train[i][1] for i in range(len(splits.train)))
    assert labels == [0] * 4 + [1] * 4
    x, _ = splits.train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8


# --- builders and checkpoints ----------------------------------------------------------


def test_builders_resize_heads_and_validate_names() -> None:
    x = torch.rand(2, 3, 32, 32)
    wrn = builders.build_wrn("16-2", 10)
    assert isinstance(wrn, builders.Normalized) and wrn(x).shape == (2, 10)
    with pytest.raises(ModelError, match="multiple of 6"):
        builders.build_wrn("15-2", 10)
    with pytest.raises(ModelError, match="depth-width"):
        builders.build_wrn("wide", 10)
    assert builders.build_torchvision("resnet18", 7, False)(x).shape == (2, 7)
    assert builders.build_torchvision("squeezenet1_1", 3, False)(torch.rand(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(ModelError, match="resnet50"):
        builders.build_torchvision("resnet5O", 7, False)
    with pytest.raises(ModelError, match="IMAGENET1K_V1"):
        builders.build_torchvision("resnet18", 7, "IMAGENET1K_V9")
    assert builders.build_timm("resnet18", 5, False)(x).shape == (2, 5)
    with pytest.raises(ModelError, match="timm has no model.*resnet18"):
        builders.build_timm("resnet18xx", 5, False)
    with pytest.raises(ModelError, match="no pretrained tag"):
        builders.build_timm("resnet18", 5, "no_such_tag")
    assert builders.model_input_size("inception_v3") == 299
    assert builders.model_input_size("resnet18") == 224
    assert builders.model_input_size("vit_base_patch16_384") == 384


def test_pretrained_download_failure_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(ModelError, match="could not be downloaded.*model.checkpoint=FILE"):
        builders.build_torchvision("resnet18", 10, True)


def test_pretrained_googlenet_drops_its_aux_heads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretrained GoogLeNet refuses aux_logits=False as an argument; the builder removes them after."""
    import torchvision.models._api as api
    from torchvision.models import googlenet

    state = googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda *a, **k: state)
    model = builders.build_torchvision("googlenet", 4, True).train()
    assert model.net.aux1 is None and model.net.aux2 is None
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 4)  # a tensor, not GoogLeNetOutputs


def test_checkpoint_round_trip_and_mismatch(tmp_path: Path) -> None:
    model = SmallCNN(10, width=4).eval()
    path = builders.save_checkpoint(model, tmp_path / "sub" / "m.safetensors")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["m.safetensors"]  # no temp file left
    fresh = SmallCNN(10, width=4).eval()
    builders.load_checkpoint(fresh, path)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(x), fresh(x))
    pt = tmp_path / "m.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, pt)
    other = SmallCNN(10, width=4).eval()
    builders.load_checkpoint(other, pt)
    assert torch.equal(model(x), other(x))
    with pytest.raises(ModelError, match=r"does not fit.*'fc.weight'.*\(5, 16\).*classes"):
        builders.load_checkpoint(SmallCNN(5, width=4), path)
    with pytest.raises(ModelError, match="does not exist; check the path"):
        builders.load_checkpoint(model, tmp_path / "absent.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="could not be read"):
        builders.load_checkpoint(model, tmp_path / "junk.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ModelError, match="could not be read"):
        builders.load_checkpoint(model, tmp_path / "junk.safetensors")
    torch.save({"net": [1, 2]}, tmp_path / "list.pt")
    with pytest.raises(ModelError, match="no state dict"):
        builders.load_checkpoint(model, tmp_path / "list.pt")


def test_checkpoint_of_the_unwrapped_net_loads_into_the_wrapper_and_back(tmp_path: Path) -> None:
    wrapped = builders.build_wrn("10-1", 3)
    path = builders.save_checkpoint(wrapped.net, tmp_path / "net.safetensors")
    again = builders.build_wrn("10-1", 3)
    builders.load_checkpoint(again, path)
    assert all(torch.equal(a, b) for a, b in zip(wrapped.state_dict().values(), again.state_dict().values()))
    # The wrapper's checkpoint into a bare net; an old .pth without BN counters; a torch.compile prefix.
    full = builders.save_checkpoint(wrapped, tmp_path / "full.safetensors")
    bare = builders.build_wrn("10-1", 3).net
    builders.load_checkpoint(bare, full)
    assert torch.equal(bare.fc.weight, wrapped.net.fc.weight)
    old = {f"_orig_mod.{k}": v for k, v in wrapped.net.state_dict().items() if "num_batches_tracked" not in k}
    torch.save(old, tmp_path / "old.pth")
    builders.load_checkpoint(again, tmp_path / "old.pth")
    with pytest.raises(ModelError, match="lacks the key"):
        builders.load_checkpoint(builders.build_wrn("16-1", 3), full)


# --- layer maps -------------------------------------------------------------------------


@functools.cache
def _net(family: str, arch: str) -> nn.Module:
    """The unwrapped network, built once per test session (eval mode)."""
    if family == "torchvision":
        return builders.build_torchvision(arch, 10, False).net.eval()
    if family == "timm":
        return builders.build_timm(arch, 10, False).net.eval()
    if family == "wrn":
        return builders.build_wrn(arch, 10).net.eval()
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()


def _fired(net: nn.Module, paths: list[str], size: int) -> set[str]:
    """Which of ``paths`` produce an output in a forward pass (a path that exists but never runs is useless)."""
    modules, seen = dict(net.named_modules()), set()
    handles = [modules[p].register_forward_hook(lambda *_, p=p: seen.add(p)) for p in paths]
    try:
        with torch.no_grad():
            net(torch.rand(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    return seen


CASES = [  # family, arch, input size
    ("torchvision", "resnet18", 64), ("torchvision", "vgg11", 32), ("torchvision", "googlenet", 64),
    ("torchvision", "mobilenet_v2", 32), ("torchvision", "densenet121", 64), ("timm", "resnet18", 64),
    ("wrn", "16-2", 32), ("generic", "mystery", 16), ("torchvision", "shufflenet_v2_x0_5", 64),
    ("torchvision", "squeezenet1_1", 64), ("timm", "efficientnet_b0", 64),
]


@pytest.mark.parametrize(("family", "arch", "size"), CASES)
def test_every_role_resolves_to_a_module_that_runs(family: str, arch: str, size: int) -> None:
    net = _net(family, arch)
    layers = resolve_layers(net, "wrn" if family == "wrn" else arch)
    assert set(layers) == {*ROLES, "repair"} and layers["repair"] == "deep2"
    paths = [layers[r] for r in ROLES]
    assert all(p in dict(net.named_modules()) for p in paths), layers
    assert _fired(net, paths, size) == set(paths), layers
    if family == "generic":
        assert layers["deep2"] == "2"  # the pool before the classifier


def test_resolve_layers_looks_through_the_normalising_wrapper() -> None:
    wrapped = builders.build_wrn("16-2", 10)
    layers = resolve_layers(wrapped, "wrn")
    names = dict(wrapped.named_modules())
    assert layers["deep2"] == "net.pool" and all(layers[r] in names for r in ROLES)


#: One real model per registered map: (family, arch, input size).
MAP_MODELS = {
    "resnet": ("torchvision", "resnet18", 64), "timm-resnet": ("timm", "resnet18", 64),
    "googlenet": ("torchvision", "googlenet", 64), "inception_v3": ("torchvision", "inception_v3", 80),
    "densenet": ("torchvision", "densenet121", 64), "mobilenet_v2": ("torchvision", "mobilenet_v2", 32),
    "mobilenet_v3_large": ("torchvision", "mobilenet_v3_large", 32),
    "mobilenet_v3_small": ("torchvision", "mobilenet_v3_small", 32),
    "efficientnet": ("torchvision", "efficientnet_b0", 32), "regnet": ("torchvision", "regnet_x_400mf", 32),
    "convnext": ("torchvision", "convnext_tiny", 32), "vgg11": ("torchvision", "vgg11", 32),
    "wrn": ("wrn", "16-2", 32),
}
_VGG_CFG = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def test_registered_layer_maps_fit_the_models_they_match() -> None:
    from demtui.plugins.layers import demtui_entropy_layers

    maps = {m.name.removesuffix("-layers"): m for m in demtui_entropy_layers()}
    assert set(maps) == set(LAYER_TABLES) == set(MAP_MODELS) | {f"{v}{bn}" for v in _VGG_CFG for bn in ("", "_bn")}
    for name, (family, arch, size) in MAP_MODELS.items():
        ref = f"wrn:{arch}" if family == "wrn" else f"{family}:{arch}"
        assert maps[name].applies_to(ref), name
        net, paths = _net(family, arch), list(maps[name].as_dict().values())
        assert _fired(net, paths, size) == set(paths), name
        assert resolve_layers(net, "wrn" if family == "wrn" else arch) == {**maps[name].as_dict(), "repair": "deep2"}


def test_vgg_maps_point_at_the_five_pools_of_each_variant() -> None:
    from torchvision.models.vgg import cfgs, make_layers

    for arch, key in _VGG_CFG.items():
        for bn in (False, True):
            features = make_layers(cfgs[key], batch_norm=bn)
            pools = [f"features.{i}" for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
            table = dict(LAYER_TABLES[f"{arch}_bn" if bn else arch].layers)
            assert [table[r] for r in ROLES[:5]] == pools and table["deep2"] == "classifier.4"


def test_layer_map_globs_match_only_their_own_family() -> None:
    """A map must never match a model it does not fit: the registry's map wins over the builder's."""
    import timm
    from torchvision import models

    tv_names = models.list_models(module=models)
    for name, table in LAYER_TABLES.items():
        hits = [n for n in tv_names if any(fnmatch.fnmatch(f"torchvision:{n}", g) for g in table.globs)]
        assert len({models.get_model_builder(n).__module__ for n in hits}) <= 1, (name, hits)
    resnets = set(timm.list_models(module="resnet"))
    timm_refs = [f"timm:{n}" for n in timm.list_models() + timm.list_pretrained()]
    hits = [r for r in timm_refs if any(fnmatch.fnmatch(r, g) for g in LAYER_TABLES["timm-resnet"].globs)]
    assert "timm:resnet50.a1_in1k" in hits and "timm:resnet50" in hits
    foreign = [r for r in hits if r.split(":")[1].split(".")[0] not in resnets]
    assert not foreign, foreign
    for ref in [f"torchvision:{n}" for n in tv_names] + timm_refs + ["wrn:28-10"]:
        assert sum(any(fnmatch.fnmatch(ref, g) for g in t.globs) for t in LAYER_TABLES.values()) <= 1, ref


def test_layer_plugin_metadata_is_torch_free() -> None:
    code = "import demtui.plugins.layers, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
