"""Model builders, checkpoints, layer maps and dataset loaders, all offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from demtui.errors import DataError, ModelError
from demtui.plugins.datasets.vision import load_cifar10, load_image_folder, stratified_split
from demtui.plugins.layers.tables import LAYER_TABLES
from demtui.plugins.models import builders
from demtui.plugins.models.layers import resolve_layers
from demtui.plugins.models.small_cnn import SmallCNN
from demtui.components import ROLES


def _image_folder(root: Path, classes: int, per_class: int) -> None:
    from PIL import Image

    for c in range(classes):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (20 + i, 16), color=(40 * c, 10 * i, 100)).save(d / f"{i}.png")


def test_image_folder_split_is_stratified_and_deterministic(tmp_path: Path) -> None:
    _image_folder(tmp_path, classes=3, per_class=5)
    a = load_image_folder(tmp_path, image_size=12, val_fraction=0.4, seed=1)
    b = load_image_folder(tmp_path, image_size=12, val_fraction=0.4, seed=1)
    assert a.classes == ["class0", "class1", "class2"] and len(a.train) == 9 and len(a.test) == 6
    assert a.train.indices == b.train.indices
    x, y = a.train[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 12, 12) and isinstance(y, int)
    assert sorted(a.test[i][1] for i in range(len(a.test))) == [0, 0, 1, 1, 2, 2]


def test_image_folder_with_train_and_val(tmp_path: Path) -> None:
    _image_folder(tmp_path / "train", classes=2, per_class=3)
    _image_folder(tmp_path / "val", classes=2, per_class=1)
    splits = load_image_folder(tmp_path, image_size=8, val_fraction=0.2)
    assert len(splits.train) == 6 and len(splits.test) == 2


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope", image_size=8, val_fraction=0.2)
    _image_folder(tmp_path / "one", classes=1, per_class=2)
    with pytest.raises(DataError, match="at least 2"):
        load_image_folder(tmp_path / "one", image_size=8, val_fraction=0.2)


def test_cifar_offline_and_missing_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path)):
        load_cifar10(tmp_path, download=False, image_size=32)


def test_stratified_split_keeps_every_class_in_training() -> None:
    train, held = stratified_split([0, 0, 0, 0, 1], 0.5, seed=0)
    assert len(held) == 2 and 4 in train and sorted(train + held) == [0, 1, 2, 3, 4]


def test_builders_resize_heads_and_validate_names() -> None:
    x = torch.rand(2, 3, 32, 32)
    assert builders.build_wrn("16-2", 10)(x).shape == (2, 10)
    with pytest.raises(ModelError, match="multiple of 6"):
        builders.build_wrn("15-2", 10)
    assert builders.build_torchvision("resnet18", 7, False)(x).shape == (2, 7)
    with pytest.raises(ModelError, match="resnet50"):
        builders.build_torchvision("resnet5O", 7, False)
    assert builders.build_timm("resnet18", 5, False)(x).shape == (2, 5)
    with pytest.raises(ModelError, match="timm has no model"):
        builders.build_timm("resnet18xx_nope", 5, False)
    assert builders.model_input_size("inception_v3") == 299


def test_checkpoint_round_trip_and_mismatch(tmp_path: Path) -> None:
    model = SmallCNN(10, width=4).eval()
    path = builders.save_checkpoint(model, tmp_path / "m.safetensors")
    fresh = SmallCNN(10, width=4).eval()
    builders.load_checkpoint(fresh, path)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(x), fresh(x))
    pt = tmp_path / "m.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, pt)
    other = SmallCNN(10, width=4).eval()
    builders.load_checkpoint(other, pt)
    assert torch.equal(model(x), other(x))
    with pytest.raises(ModelError, match="does not fit.*fc.weight"):
        builders.load_checkpoint(SmallCNN(5, width=4), path)
    with pytest.raises(ModelError, match="does not exist"):
        builders.load_checkpoint(model, tmp_path / "absent.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="could not be read"):
        builders.load_checkpoint(model, tmp_path / "junk.pt")


def test_checkpoint_of_the_unwrapped_net_loads_into_the_wrapper(tmp_path: Path) -> None:
    wrapped = builders.build_wrn("10-1", 3)
    path = builders.save_checkpoint(wrapped.net, tmp_path / "net.safetensors")
    again = builders.build_wrn("10-1", 3)
    builders.load_checkpoint(again, path)
    assert all(torch.equal(a, b) for a, b in zip(wrapped.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize(("family", "arch", "net"), [
    ("torchvision", "resnet18", lambda: builders.build_torchvision("resnet18", 10, False).net),
    ("torchvision", "vgg11", lambda: builders.build_torchvision("vgg11", 10, False).net),
    ("torchvision", "googlenet", lambda: builders.build_torchvision("googlenet", 10, False).net),
    ("torchvision", "mobilenet_v2", lambda: builders.build_torchvision("mobilenet_v2", 10, False).net),
    ("torchvision", "densenet121", lambda: builders.build_torchvision("densenet121", 10, False).net),
    ("timm", "resnet18", lambda: builders.build_timm("resnet18", 10, False).net),
    ("wrn", "wrn", lambda: builders.build_wrn("16-2", 10).net),
    ("generic", "mystery", lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                                       torch.nn.Linear(4, 2))),
])
def test_every_role_resolves_to_a_real_module(family: str, arch: str, net) -> None:
    module = net()
    layers = resolve_layers(module, arch)
    names = dict(module.named_modules())
    assert set(ROLES) <= set(layers) and layers["repair"] == "deep2"
    assert all(layers[r] in names for r in ROLES), layers
    if family == "generic":
        assert layers["deep2"] == "2"  # the pool before the classifier


def test_registered_layer_maps_fit_their_models() -> None:
    from demtui.plugins.layers import demtui_entropy_layers

    maps = {m.name: m for m in demtui_entropy_layers()}
    built = {"resnet-layers": builders.build_torchvision("resnet18", 10, False).net,
             "timm-resnet-layers": builders.build_timm("resnet18", 10, False).net,
             "googlenet-layers": builders.build_torchvision("googlenet", 10, False).net,
             "vgg-layers": builders.build_torchvision("vgg11", 10, False).net,
             "mobilenet_v2-layers": builders.build_torchvision("mobilenet_v2", 10, False).net,
             "wrn-layers": builders.build_wrn("16-2", 10).net}
    assert set(built) == set(maps) == {f"{n}-layers" for n in LAYER_TABLES}
    for name, net in built.items():
        names = dict(net.named_modules())
        assert all(p in names for p in maps[name].as_dict().values()), name


def test_layer_plugin_metadata_is_torch_free() -> None:
    code = "import demtui.plugins.layers, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
