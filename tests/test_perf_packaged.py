"""Shipped victim weights: used only for the exact recipe that made them, never stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demtui.prepare import _unpack_victim, packaged_victims, victim_key
from demtui.registry import get_registry
from demtui.spec import quickstart_dict, resolve


def _quickstart_keys(seeds: range) -> set[str]:
    registry, data = get_registry(), quickstart_dict()
    keys = set()
    for seed in seeds:
        data["run"]["seed"] = seed
        keys.add(victim_key(resolve(data, registry)))
    return keys


def test_every_shipped_victim_matches_a_current_quickstart_recipe() -> None:
    """A recipe change changes the key: a shipped file that no recipe names any more must be regenerated."""
    shipped = sorted(packaged_victims().glob("*.safetensors"))
    keys = _quickstart_keys(range(3))
    for path in shipped:
        assert path.stem in keys, f"{path.name} matches no quickstart recipe; regenerate it (docs/method.md)"
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["samples"] == 20000 and "recipe" in meta


def test_a_shipped_victim_is_copied_into_the_cache_only_for_its_key(tmp_path: Path) -> None:
    shipped = sorted(packaged_victims().glob("*.safetensors"))
    if not shipped:
        pytest.skip("no victim shipped in this checkout")
    assert not _unpack_victim(tmp_path / "victims" / "0000000000000000.safetensors")
    target = tmp_path / "victims" / shipped[0].name
    assert _unpack_victim(target)
    assert target.read_bytes() == shipped[0].read_bytes()
    assert json.loads(target.with_suffix(".json").read_text())["packaged"] is True
