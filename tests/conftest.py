"""Shared fixtures: an isolated cache and registry environment for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No user registry or config leaks in; victim cache shared per session (tests stay fast)."""
    monkeypatch.delenv("DEMTUI_REGISTRY", raising=False)
    monkeypatch.delenv("DEMTUI_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("DEMTUI_NO_PLUGINS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg"))
    if "DEMTUI_CACHE" not in os.environ:
        monkeypatch.setenv("DEMTUI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory, so ./registry.toml of the repo is not picked up."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
