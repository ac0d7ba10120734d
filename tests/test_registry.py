"""Plugin loading: registry.toml modules, entry points, and broken plugins reported."""

import sys
import textwrap
from pathlib import Path

import pytest

from demtui.config import load_config
from demtui.errors import PluginError, UnknownComponentError
from demtui.registry import Registry

GOOD_PLUGIN = '''
from demtui.components import Attack
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

@hookimpl
def demtui_attacks():
    return [Attack(name="{name}", summary="A test attack.", entry="os.path:join",
                   params=schema(Param("eps", "float", 0.03, "budget", min=0, max=1)))]
'''


def _registry(tmp_path: Path, body: str, entry_points: bool = False) -> Registry:
    reg_file = tmp_path / "registry.toml"
    reg_file.write_text(body)
    return Registry(load_config(reg_file)).load(entry_points=entry_points)


def test_builtins_load_through_the_hooks(in_tmp):
    reg = Registry(load_config()).load(entry_points=False)
    assert not reg.broken()
    assert "df-uap" in reg.names("attack")
    assert "democratic" in reg.names("defense")
    assert reg.model_source("torchvision:resnet50")[1] == "resnet50"


def test_unknown_name_suggests_closest(in_tmp):
    reg = Registry(load_config()).load(entry_points=False)
    with pytest.raises(UnknownComponentError, match="Did you mean 'df-uap'"):
        reg.get("attack", "dfuap")
    with pytest.raises(UnknownComponentError, match="needs an architecture"):
        reg.model_source("torchvision")


def test_local_module_from_user_registry_and_defaults_override(in_tmp):
    (in_tmp / "myplug.py").write_text(GOOD_PLUGIN.format(name="my-attack"))
    reg = _registry(in_tmp, textwrap.dedent('''
        [plugins]
        local = ["myplug.py"]
        [defaults.attack.my-attack]
        eps = "8/255"
        [defaults.attack.df-uap]
        iterations = 77
    '''))
    assert reg.get("attack", "my-attack").params.defaults()["eps"] == pytest.approx(8 / 255)
    assert reg.get("attack", "df-uap").params.defaults()["iterations"] == 77
    assert reg.owner("attack", "my-attack").endswith("myplug.py")


def test_disable_skips_a_builtin(in_tmp):
    reg = _registry(in_tmp, '[plugins]\ndisable = ["demtui.plugins.defenses"]\n')
    assert reg.names("defense") == []
    assert any(p.status == "disabled" for p in reg.plugins)


def test_broken_plugins_are_reported_and_never_break_the_rest(in_tmp):
    (in_tmp / "broken_import.py").write_text("import does_not_exist_anywhere\n")
    (in_tmp / "clash.py").write_text(GOOD_PLUGIN.format(name="df-uap"))
    (in_tmp / "wrong_type.py").write_text(
        "from demtui.hookspecs import hookimpl\n@hookimpl\ndef demtui_attacks():\n    return ['not a record']\n")
    (in_tmp / "typo.py").write_text(
        "from demtui.hookspecs import hookimpl\n@hookimpl\ndef demtui_atacks():\n    return []\n")
    (in_tmp / "bad_default.py").write_text(GOOD_PLUGIN.format(name="x").replace("0.03", "3.0"))
    (in_tmp / "old_api.py").write_text("DEMTUI_API = 99\n")
    reg = _registry(in_tmp, '[plugins]\nlocal = ["broken_import.py", "clash.py", "wrong_type.py", "typo.py", '
                            '"bad_default.py", "old_api.py"]\n')
    problems = {Path(p.name).stem: " ".join(p.problems) for p in reg.broken()}
    assert "ModuleNotFoundError" in problems["broken_import"]
    assert "already provides" in problems["clash"] and "demtui.plugins.attacks" in problems["clash"]
    assert "must return Attack records" in problems["wrong_type"]
    assert "unknown hook 'demtui_atacks'" in problems["typo"] and "demtui_attacks" in problems["typo"]
    assert "default of" in problems["bad_default"]
    assert "API 99" in problems["old_api"]
    # the rest still works, and the clash kept the built-in
    assert reg.owner("attack", "df-uap") == "demtui.plugins.attacks"
    assert "democratic" in reg.names("defense")


def test_strict_mode_makes_problems_fatal(in_tmp, monkeypatch):
    (in_tmp / "broken_import.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.setenv("DEMTUI_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="boom"):
        _registry(in_tmp, '[plugins]\nlocal = ["broken_import.py"]\n')


def _fake_distribution(root: Path, module: str, body: str) -> None:
    """An installed package as importlib.metadata sees it: a dist-info with entry points."""
    (root / f"{module}.py").write_text(body)
    dist = root / f"{module}-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(f"[demtui]\n{module} = {module}\n")


def test_entry_point_plugins_load_and_broken_ones_are_reported(in_tmp, monkeypatch):
    site = in_tmp / "site"
    site.mkdir()
    _fake_distribution(site, "demtui_fake_good", GOOD_PLUGIN.format(name="fake-attack"))
    _fake_distribution(site, "demtui_fake_bad", "raise ImportError('missing dependency foo')\n")
    monkeypatch.syspath_prepend(str(site))
    reg = Registry(load_config()).load(entry_points=True)
    good = next(p for p in reg.plugins if p.name == "demtui_fake_good")
    bad = next(p for p in reg.plugins if p.name == "demtui_fake_bad")
    assert good.status == "ok" and good.package == "demtui_fake_good" and good.version == "1.2.3"
    assert "attack:fake-attack" in good.provides
    assert bad.status == "failed" and "missing dependency foo" in bad.problems[0]
    monkeypatch.setenv("DEMTUI_NO_PLUGINS", "1")
    assert "fake-attack" not in Registry(load_config()).load().names("attack")
    sys.modules.pop("demtui_fake_good", None)
