"""Every built-in attack and defense passes the same contract checks plugin authors run."""

from __future__ import annotations

import pytest

from demtui.registry import get_registry
from demtui.testing import (ContractError, check_attack, check_defense, check_light_import, check_metadata,
                            small_budget)


def _builtin(kind: str) -> list[str]:
    registry = get_registry()
    owners = {p.name: p.source for p in registry.plugins}
    return sorted(name for name, comp in registry.components[kind].items()
                  if owners.get(registry.owner(kind, name), "builtin") == "builtin")


@pytest.mark.parametrize("name", _builtin("attack"))
def test_builtin_attack_contract(name: str) -> None:
    check_attack(name)


#: CFN/FNS go after residual stages; the tiny SmallCNN victim has none, so name its conv blocks.
DEFENSE_PARAMS = {"cfn": {"layers": "conv4,conv6"}, "fns": {"layers": "conv4,conv6"}}


@pytest.mark.parametrize("name", _builtin("defense"))
def test_builtin_defense_contract(name: str) -> None:
    check_defense(name, params=DEFENSE_PARAMS.get(name))


def test_every_builtin_component_has_usable_metadata() -> None:
    registry = get_registry()
    for kind in ("model", "dataset", "layers", "attack", "defense"):
        for comp in registry.components[kind].values():
            check_metadata(comp)


def test_contract_errors_name_the_component_and_the_fix() -> None:
    from demtui.components import Attack
    from demtui.params import Param, schema

    broken = Attack(name="loud", summary="Breaks its bound.", entry="test_contracts:_loud_attack",
                    targeted=True, params=schema(Param("eps", "float", 0.01, "Budget.", min=0, max=1)))
    with pytest.raises(ContractError, match=r"attack 'loud' .*L∞ norm 0.5000 .*above its budget eps = 0.0100.*project δ"):
        check_attack(broken)
    assert small_budget(broken.params) == {"eps": 0.01}


def _loud_attack(model, data, target, params, ctx):
    import torch

    from demtui.perturbation import AdditivePerturbation

    pert = AdditivePerturbation(torch.zeros(1, 3, 32, 32), 1.0)
    pert.delta.fill_(0.5)  # ignores params["eps"]
    return pert


FIXTURES = __import__("pathlib").Path(__file__).parent / "plugin_fixtures"


def test_check_attack_measures_custom_perturbation_types_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from demtui.components import Attack
    from demtui.params import Param, schema

    monkeypatch.syspath_prepend(str(FIXTURES))
    custom = Attack(name="custom-loud", summary="Adds 0.3 to every pixel.", entry="crashy_code:custom_loud",
                    params=schema(Param("eps", "float", 10 / 255, "Budget.", min=0, max=1)))
    with pytest.raises(ContractError, match=r"L∞ norm 0.3000 .*above its budget eps = 0.0392"):
        check_attack(custom)


def test_check_defense_gives_only_what_a_defense_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    from demtui.api import subset_params
    from demtui.components import Defense
    from demtui.params import schema

    monkeypatch.syspath_prepend(str(FIXTURES))
    bare = Defense(name="echo-bare", summary="Declares nothing.", entry="crashy_code:uap_echo")
    assert check_defense(bare).history == {"uaps": 0, "uap_linf": [], "subset": 0, "layer": "gap"}
    full = Defense(name="echo-full", summary="Declares a subset and known UAPs.", entry="crashy_code:uap_echo",
                   known_uaps=True, params=schema(*subset_params()))
    history = check_defense(full).history
    assert history["subset"] == 128 and history["uaps"] == 1 and history["uap_linf"] == [round(10 / 255, 6)]
    wrapper = Defense(name="echo-wrapper", summary="A wrapper with no rebuild.", entry="crashy_code:uap_echo",
                      changes="wrapper")
    with pytest.raises(ContractError, match="rebuild"):
        check_defense(wrapper)


def test_check_metadata_takes_a_name_and_check_light_import_catches_torch(tmp_path, monkeypatch) -> None:
    check_metadata("df-uap", kind="attack")
    with pytest.raises(ContractError, match="kind="):
        check_metadata("no-such-component-anywhere")
    (tmp_path / "heavy_plugin_mod.py").write_text("import json\nimport torch\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(ContractError, match=r"imports torch .*heavy_plugin_mod.py:2"):
        check_light_import("heavy_plugin_mod")
    check_light_import("demtui.plugins.attacks")
