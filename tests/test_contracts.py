"""Every built-in attack and defense passes the same contract checks plugin authors run."""

from __future__ import annotations

import pytest

from demtui.registry import get_registry
from demtui.testing import ContractError, check_attack, check_defense, check_metadata, small_budget


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
    with pytest.raises(ContractError, match=r"attack 'loud' exceeded its L∞ budget.*project δ"):
        check_attack(broken)
    assert small_budget(broken.params) == {"eps": 0.01}


def _loud_attack(model, data, target, params, ctx):
    import torch

    from demtui.perturbation import AdditivePerturbation

    pert = AdditivePerturbation(torch.zeros(1, 3, 32, 32), 1.0)
    pert.delta.fill_(0.5)  # ignores params["eps"]
    return pert
