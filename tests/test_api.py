"""demtui.api: the public plugin toolkit is light to import, complete, documented and correct."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import demtui.api as api

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_importing_the_api_and_its_metadata_names_does_not_import_torch() -> None:
    code = ("import sys, json; from demtui.api import Attack, Defense, Param, Rule, hookimpl, schema, subset_params, "
            "training_params, layer_param; training_params(); subset_params(); "
            "print(json.dumps([m in sys.modules for m in ('torch', 'torchvision', 'timm')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [False, False, False]


def test_every_public_name_resolves_and_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    missing = [name for name in api.__all__ if f"`{name}" not in docs]
    assert not missing, f"undocumented in docs/plugins.md: {missing}"
    for name in api.__all__:
        assert getattr(api, name) is not None
    with pytest.raises(AttributeError):
        api.no_such_helper  # noqa: B018


def test_projection_and_parameter_helpers_hand_computed() -> None:
    import torch

    delta = torch.tensor([-0.5, -0.01, 0.0, 0.02, 0.3])
    assert api.project_linf(delta, 0.02).tolist() == pytest.approx([-0.02, -0.01, 0.0, 0.02, 0.02])
    assert api.project_image(torch.tensor([0.99, 0.01]), torch.tensor([0.05, -0.05])).tolist() == pytest.approx([1.0, 0.0])
    names = [p.name for p in api.subset_params()]
    assert names == list(api.Defense.SUBSET_PARAMS)
    assert {p.name for p in api.training_params()} >= {"epochs", "lr", "momentum", "batch_size", "collapse_check"}


def test_rules_run_whenever_a_full_parameter_set_is_validated() -> None:
    from demtui.errors import ParamError

    s = api.schema(api.Param("kernel", "int", 3, "k", min=1),
                   rules=[api.Rule("kernel must be odd, got {kernel}", lambda p: p["kernel"] % 2 == 1)])
    assert s.validate({"kernel": 5}) == {"kernel": 5}
    with pytest.raises(ParamError, match="kernel must be odd, got 4"):
        s.validate({"kernel": 4}, owner="defense blur")
    broken = api.schema(api.Param("k", "int", 3, "k"), rules=[api.Rule("k", lambda p: p["missing"] > 0)])
    with pytest.raises(ParamError, match="raised KeyError"):
        broken.validate({})
    with pytest.raises(ParamError, match="break a rule"):
        s.with_defaults({"kernel": 2})  # registry.toml defaults must keep the rules too


def test_the_engine_reads_only_the_defense_parameters_it_declares() -> None:
    from demtui.boundary import defense_layer, subset_size

    bare = api.Defense(name="bare", summary="Declares nothing.", entry="os.path:join")
    sized = api.Defense(name="sized", summary="Declares a subset.", entry="os.path:join",
                        params=api.schema(*api.subset_params(), api.layer_param()))
    assert subset_size(bare, {"subset_fraction": 0.5}, 600) == 0  # undeclared: no hidden 5% (and no 50%)
    assert subset_size(sized, {"subset_fraction": 0.05, "subset_size": None}, 600) == 30
    assert subset_size(sized, {"subset_fraction": 0.05, "subset_size": 7}, 600) == 7
    layers = {"deep2": "gap", "shallow1": "conv1"}
    assert defense_layer(bare, {"layer": "shallow1"}, layers, "gap") == "gap"
    assert defense_layer(sized, {"layer": "shallow1"}, layers, "gap") == "conv1"
    assert defense_layer(sized, {"layer": ""}, layers, "gap") == "gap"
    assert sized.engine_params() == ["subset_fraction", "subset_size", "layer"] and bare.engine_params() == []


def test_train_defense_says_what_to_declare() -> None:
    import torch

    from demtui.errors import SpecError
    from demtui.testing import _ctx

    data = api.DefenseData(x=torch.zeros((0, 3, 8, 8), dtype=torch.uint8), y=torch.zeros(0, dtype=torch.long),
                           num_classes=2, layer="", targets=[])
    with pytest.raises(SpecError, match="subset_params"):
        api.train_defense(torch.nn.Linear(2, 2), data, {"epochs": 1, "lr": 0.1}, _ctx(0), lambda x, y: None, name="d")
    data.x, data.y = torch.zeros((4, 3, 8, 8), dtype=torch.uint8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(SpecError, match="training_params"):
        api.train_defense(torch.nn.Linear(2, 2), data, {}, _ctx(0), lambda x, y: None, name="d")




def _attack(threat: str = "linf"):
    return api.Attack(name="probe", summary="Probe.", entry="os.path:join", threat=threat,
                      params=api.schema(api.Param("eps", "float", 0.04, "b"), api.Param("area", "float", 0.02, "a"),
                                        api.Param("size", "int", None, "s", nullable=True)))


def test_budget_checks_hand_computed() -> None:
    import torch

    from demtui.blame import BudgetError
    from demtui.budget import allowed_patch_pixels, check_perturbation, probe_images
    from demtui.plugins.attacks.patch import PatchPerturbation

    probe = probe_images(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    eps = 0.04
    exact = api.AdditivePerturbation(torch.full((1, 3, 32, 32), eps), eps)
    assert check_perturbation(_attack(), exact, {"eps": eps}, probe)["measured"] == pytest.approx(eps)
    over = api.AdditivePerturbation(torch.full((1, 3, 32, 32), eps * 1.01), eps * 1.01)  # 1% over
    with pytest.raises(BudgetError, match=r"L∞ norm 0.0404"):
        check_perturbation(_attack(), over, {"eps": eps}, probe)
    with pytest.raises(BudgetError, match=r"L∞ norm 0.0404"):
        check_perturbation(_attack("generator"), over, {"eps": eps}, probe)  # a generator's δ is additive
    assert allowed_patch_pixels({"area": 0.02}, "area", (32, 32)) == 25  # ⌈√20.48⌉² = 5²
    assert allowed_patch_pixels({"area": 0.02, "size": 7}, "area", (32, 32)) == 49
    fits = PatchPerturbation(torch.rand(3, 5, 5), None, (32, 32), top=0, left=0)
    assert check_perturbation(_attack("patch"), fits, {"area": 0.02}, probe)["measured"] == 25
    big = PatchPerturbation(torch.rand(3, 6, 6), None, (32, 32), top=0, left=0)
    with pytest.raises(BudgetError, match="changes 36 pixels of a 32×32 image, more than its budget allows \\(25"):
        check_perturbation(_attack("patch"), big, {"area": 0.02}, probe)

    class Shrink(api.Perturbation):
        kind = "test-shrink"

        def apply(self, x):
            return x[:, :, :16, :16]

    with pytest.raises(BudgetError, match="shape, dtype or device"):
        check_perturbation(_attack(), Shrink(), {"eps": eps}, probe)

    class NaNs(api.Perturbation):
        kind = "test-nans"

        def apply(self, x):
            return x * float("nan")

    with pytest.raises(BudgetError, match="non-finite"):
        check_perturbation(_attack(), NaNs(), {"eps": eps}, probe)
    with pytest.raises(BudgetError, match="not a Perturbation"):
        check_perturbation(_attack(), torch.zeros(3), {"eps": eps}, probe)


def test_a_resumed_run_refuses_components_from_another_plugin() -> None:
    from demtui.errors import SpecError
    from demtui.provenance import compare

    saved = {"attack": {"name": "fgsm-uap", "plugin": "example", "distribution": "demtui-plugin-example",
                        "version": "0.1.0"}}
    assert compare(saved, {"attack": dict(saved["attack"])}) == []
    newer = {"attack": {**saved["attack"], "version": "0.2.0"}}
    assert "continues with version 0.2.0" in compare(saved, newer)[0]
    other = {"attack": {**saved["attack"], "plugin": "rival", "distribution": "demtui-rival"}}
    with pytest.raises(SpecError, match="came from plugin 'example'.*now resolves to plugin 'rival'"):
        compare(saved, other)
