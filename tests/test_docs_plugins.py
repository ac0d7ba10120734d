"""docs/plugins.md's install instructions work as shown: a path dependency survives `uv sync`.

The project block of the docs is used verbatim (plus a source for demtui itself, which a
real user gets from their index), with a plugin written by `demtui new-plugin`. Offline:
uv resolves from its cache, as on CI after the project's own `uv sync`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _project_block() -> str:
    docs = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    match = re.search(r"test_docs_plugins\.py installs exactly this block.*?```toml\n(.*?)```", docs, re.S)
    assert match, "docs/plugins.md lost its tested pyproject block"
    return match.group(1)


def _uv(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["uv", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed here")
def test_a_plugin_installed_as_the_docs_say_survives_uv_sync(tmp_path: Path) -> None:
    from demtui.scaffold import new_plugin

    new_plugin("my-uap", tmp_path)
    block = _project_block()
    assert 'demtui-my-uap = { path = "./demtui-my-uap", editable = true }' in block
    (tmp_path / "pyproject.toml").write_text(block + f'demtui = {{ path = "{REPO.as_posix()}", editable = true }}\n')
    lock = _uv(["lock", "--offline"], tmp_path)
    if lock.returncode != 0 and "network" in lock.stderr.lower():
        pytest.skip(f"uv's cache cannot resolve demtui's dependencies offline: {lock.stderr.strip()[-200:]}")
    assert lock.returncode == 0, lock.stderr
    for _ in range(2):  # the second sync is the one that used to drop `uv pip install -e` plugins
        synced = _uv(["sync", "--offline"], tmp_path)
        assert synced.returncode == 0, synced.stderr
        listed = subprocess.run([str(tmp_path / ".venv" / "bin" / "demtui"), "list", "attacks"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        assert "my-uap-attack" in listed.stdout, listed.stdout + listed.stderr
