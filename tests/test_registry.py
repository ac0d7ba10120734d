"""Plugin loading: registry.toml modules, entry points, and broken plugins reported."""

import json
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
    assert "also a built-in" in problems["clash"] and "df-uap@clash" in problems["clash"]
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


# --- names: collisions never depend on install order; name@plugin picks one --------------------
def test_a_name_two_third_party_plugins_provide_is_ambiguous_whatever_the_install_order(in_tmp, monkeypatch):
    sites = {}
    for module in ("demtui_twin_a", "demtui_twin_b"):  # one site-packages folder each: sys.path order = install order
        sites[module] = in_tmp / f"site-{module}"
        sites[module].mkdir()
        _fake_distribution(sites[module], module, GOOD_PLUGIN.format(name="twin-uap"))
    outcomes = []
    for order in (("demtui_twin_a", "demtui_twin_b"), ("demtui_twin_b", "demtui_twin_a")):
        with monkeypatch.context() as m:
            for module in reversed(order):
                m.syspath_prepend(str(sites[module]))
            from importlib import metadata

            assert [ep.value for ep in metadata.entry_points(group="demtui") if "twin" in ep.value] == list(order)
            reg = Registry(load_config()).load(entry_points=True)
            with pytest.raises(UnknownComponentError) as info:
                reg.get("attack", "twin-uap")
            outcomes.append((sorted(reg.names("attack")), [p.name for p in reg.plugins],
                             reg.owner("attack", "twin-uap@demtui_twin_b")))
        for module in order:
            sys.modules.pop(module, None)
        message = str(info.value)
        assert "'twin-uap@demtui_twin_a'" in message and "'twin-uap@demtui_twin_b'" in message
        assert "disable" in message and "registry.toml" in message
    assert outcomes[0] == outcomes[1]
    assert "twin-uap@demtui_twin_a" in outcomes[0][0] and outcomes[0][2] == "demtui_twin_b"


def test_qualified_references_work_in_specs_flags_and_show(in_tmp):
    from typer.testing import CliRunner

    from demtui import spec as specmod
    from demtui.cli import app

    (in_tmp / "twin_a.py").write_text(GOOD_PLUGIN.format(name="twin-uap"))
    (in_tmp / "twin_b.py").write_text(GOOD_PLUGIN.format(name="twin-uap"))
    reg = _registry(in_tmp, '[plugins]\nlocal = ["twin_a.py", "twin_b.py"]\n[defaults.attack."twin-uap@twin_b"]\neps = 0.01\n')
    problems = {p.qualifier: " ".join(p.problems) for p in reg.plugins if p.source == "local"}
    assert "'twin-uap@twin_b'" in problems["twin_a"] and "'twin-uap@twin_a'" in problems["twin_b"]
    assert reg.get("attack", "twin-uap@twin_b").provider.plugin.endswith("twin_b.py")
    assert reg.get("attack", "twin-uap@twin_b").params.defaults()["eps"] == 0.01  # qualified registry defaults
    data = specmod.merge(specmod.quickstart_dict(), {"attack": {"name": "twin-uap@twin_a"}})
    assert specmod.resolve(data, reg).attack.name == "twin-uap@twin_a"
    with pytest.raises(UnknownComponentError, match="provided by 2 plugins"):
        specmod.resolve(specmod.merge(specmod.quickstart_dict(), {"attack": {"name": "twin-uap"}}), reg)
    assert reg.model_source("torchvision:resnet18@builtin")[1] == "resnet18"  # ':' and '@' never clash
    with pytest.raises(UnknownComponentError, match="No attack 'df-uap' comes from a plugin called 'twin_a'"):
        reg.get("attack", "df-uap@twin_a")
    out = CliRunner().invoke(app, ["show", "twin-uap@twin_b", "--registry", str(in_tmp / "registry.toml")])
    assert out.exit_code == 0 and "twin-uap@twin_b" in out.output and "twin_a" not in out.output
    listing = CliRunner().invoke(app, ["list", "attacks", "--registry", str(in_tmp / "registry.toml")])
    assert "twin-uap@twin_a" in listing.output and "twin-uap@twin_b" in listing.output


def test_disabling_one_of_two_providers_gives_the_other_the_bare_name(in_tmp):
    (in_tmp / "twin_a.py").write_text(GOOD_PLUGIN.format(name="twin-uap"))
    (in_tmp / "twin_b.py").write_text(GOOD_PLUGIN.format(name="twin-uap"))
    reg = _registry(in_tmp, '[plugins]\nlocal = ["twin_a.py", "twin_b.py"]\ndisable = ["twin_a"]\n')
    assert reg.get("attack", "twin-uap").provider.qualifier == "twin_b"
    assert not reg.broken()


def test_entry_point_names_shared_by_two_distributions_both_load(in_tmp, monkeypatch):
    site = in_tmp / "site"
    site.mkdir()
    for dist, attack in (("demtui_dup_x", "dup-x"), ("demtui_dup_y", "dup-y")):
        (site / f"{dist}.py").write_text(GOOD_PLUGIN.format(name=attack))
        info = site / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[demtui]\ndup = {dist}\n")
    monkeypatch.syspath_prepend(str(site))
    reg = Registry(load_config()).load(entry_points=True)
    assert {"dup-x", "dup-y"} <= set(reg.names("attack"))
    assert reg.get("attack", "dup-y").provider.plugin == "demtui_dup_y:dup"
    for dist in ("demtui_dup_x", "demtui_dup_y"):
        sys.modules.pop(dist, None)


# --- hooks: one bad record, tracebacks, unmarked hooks, empty plugins, strict mode ---------------
def test_one_bad_record_is_reported_by_name_and_the_others_of_its_hook_still_load(in_tmp):
    (in_tmp / "mixed.py").write_text(textwrap.dedent('''
        from demtui.api import Attack, Param, hookimpl, schema

        @hookimpl
        def demtui_attacks():
            return [
                Attack(name="fine-one", summary="Fine.", entry="os.path:join", params=schema(Param("eps", "float", 0.03, "b"))),
                Attack(name="bad-default", summary="Bad.", entry="os.path:join",
                       params=schema(Param("eps", "float", 3.0, "b", min=0, max=1))),
                Attack(name="Bad Name", summary="Bad.", entry="os.path:join", params=schema(Param("eps", "float", 0.03, "b"))),
                Attack(name="no-budget", summary="Bad.", entry="os.path:join"),
                Attack(name="fine-two", summary="Fine.", entry="os.path:join", params=schema(Param("eps", "float", 0.03, "b"))),
            ]
    '''))
    reg = _registry(in_tmp, '[plugins]\nlocal = ["mixed.py"]\n')
    record = next(p for p in reg.plugins if p.name.endswith("mixed.py"))
    assert {"fine-one", "fine-two"} <= set(reg.names("attack")) and record.status == "partial"
    text = " ".join(record.problems)
    assert "attack 'bad-default'" in text and "default of" in text
    assert "'Bad Name' is invalid" in text and "attack 'no-budget'" in text and "'eps'" in text


def test_a_raising_hook_keeps_its_traceback_for_debug(in_tmp):
    from typer.testing import CliRunner

    from demtui.cli import app

    (in_tmp / "raiser.py").write_text("from demtui.api import hookimpl\n\n@hookimpl\ndef demtui_attacks():\n"
                                      "    return [1 / 0]\n")
    (in_tmp / "registry.toml").write_text('[plugins]\nlocal = ["raiser.py"]\n')
    reg = Registry(load_config(in_tmp / "registry.toml")).load(entry_points=False)
    record = next(p for p in reg.plugins if p.name.endswith("raiser.py"))
    assert "raiser.py:5" in record.problems[0] and "ZeroDivisionError" in record.problems[0]
    assert "return [1 / 0]" in record.traces[0]
    res = CliRunner().invoke(app, ["--debug", "plugins", "--registry", str(in_tmp / "registry.toml")])
    assert res.exit_code == 0 and "return [1 / 0]" in res.output


def test_unmarked_hooks_and_plugins_that_provide_nothing_say_so(in_tmp):
    (in_tmp / "unmarked.py").write_text("def demtui_attacks():\n    return []\n")
    (in_tmp / "nothing.py").write_text("X = 1\n")
    reg = _registry(in_tmp, '[plugins]\nlocal = ["unmarked.py", "nothing.py"]\n')
    by_stem = {Path(p.name).stem: p for p in reg.plugins if p.source == "local"}
    assert by_stem["unmarked"].status == "failed" and "not mark it @hookimpl" in by_stem["unmarked"].problems[0]
    assert by_stem["nothing"].status == "empty" and "provides nothing" in by_stem["nothing"].problems[0]


def test_strict_mode_lists_every_problem(in_tmp, monkeypatch):
    (in_tmp / "one.py").write_text("raise RuntimeError('first boom')\n")
    (in_tmp / "two.py").write_text("raise RuntimeError('second boom')\n")
    monkeypatch.setenv("DEMTUI_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError) as info:
        _registry(in_tmp, '[plugins]\nlocal = ["one.py", "two.py"]\n')
    assert "first boom" in str(info.value) and "second boom" in str(info.value) and "2 plugin problem(s)" in str(info.value)


def test_list_and_run_print_one_warning_line_when_plugins_failed(in_tmp):
    from typer.testing import CliRunner

    from demtui.cli import app

    (in_tmp / "broken.py").write_text("import does_not_exist_anywhere\n")
    (in_tmp / "registry.toml").write_text('[plugins]\nlocal = ["broken.py"]\n')
    for args in (["list", "attacks"], ["run", "--headless", "--attack", "nope-not-here"]):
        res = CliRunner().invoke(app, [*args, "--registry", str(in_tmp / "registry.toml")])
        warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "did not load cleanly" in res.output and "broken.py" in res.output


# --- local single-file plugins ----------------------------------------------------------------
def test_a_single_file_plugin_imports_its_neighbours_and_errors_never_say_reinstall(in_tmp):
    folder = in_tmp / "mine"
    folder.mkdir()
    (folder / "helpers_for_mine.py").write_text("SUMMARY = 'From a neighbouring module.'\n")
    (folder / "mine_code.py").write_text("def craft(*args):\n    return None\n")
    (folder / "mine.py").write_text(textwrap.dedent('''
        from helpers_for_mine import SUMMARY
        from demtui.api import Attack, Param, hookimpl, schema

        @hookimpl
        def demtui_attacks():
            eps = schema(Param("eps", "float", 0.03, "b"))
            return [Attack(name="mine", summary=SUMMARY, entry="mine_code:craft", params=eps),
                    Attack(name="mine-missing", summary="Missing code.", entry="mine_code_gone:craft", params=eps)]
    '''))
    reg = _registry(in_tmp, '[plugins]\nlocal = ["mine/mine.py"]\n')
    assert not reg.broken()
    assert reg.get("attack", "mine").summary == "From a neighbouring module." and callable(reg.get("attack", "mine").load())
    from demtui.blame import PluginRunError

    with pytest.raises(PluginRunError) as info:
        reg.get("attack", "mine-missing").load()
    assert "reinstall" not in str(info.value) and str(folder) in str(info.value) and "mine_code_gone" in str(info.value)
    for module in ("helpers_for_mine", "mine_code"):
        sys.modules.pop(module, None)


def test_plugins_check_reports_every_problem_including_heavy_imports(in_tmp):
    from typer.testing import CliRunner

    from demtui.cli import app

    (in_tmp / "heavy.py").write_text(textwrap.dedent('''
        import torch  # the mistake: every demtui command would import torch
        from demtui.api import Attack, Defense, Param, hookimpl, schema

        @hookimpl
        def demtui_attacks():
            return [Attack(name="heavy-missing", summary="Code is gone.", entry="heavy_code_gone:craft",
                           params=schema(Param("eps", "float", 0.03, "b")))]

        @hookimpl
        def demtui_defenses():
            return [Defense(name="heavy-wrapper", summary="No rebuild.", entry="os.path:join", changes="wrapper")]
    '''))
    (in_tmp / "registry.toml").write_text('[plugins]\nlocal = ["heavy.py"]\n')
    res = CliRunner().invoke(app, ["plugins", "--check", "--json", "--registry", str(in_tmp / "registry.toml")])
    assert res.exit_code == 2
    problems = json.loads(res.stdout[: res.stdout.rindex("}") + 1])["check"]
    text = " ".join(problems)
    assert "imports torch" in text and "heavy.py:2" in text
    assert "heavy-missing" in text and "heavy_code_gone" in text
    assert "heavy-wrapper" in text and "rebuild" in text
    assert len(problems) == 3


def test_executors_follow_the_same_naming_and_blame_rules(in_tmp):
    from demtui.blame import PluginRunError
    from demtui.executors import ExecutorContext, make_executor

    (in_tmp / "execs.py").write_text(textwrap.dedent('''
        from demtui.api import ExecutorSource, hookimpl

        @hookimpl
        def demtui_executors():
            return [ExecutorSource(name="local", summary="Shadows the built-in.", entry="execs_code:make"),
                    ExecutorSource(name="boom-exec", summary="Raises when made.", entry="execs_code:make")]
    '''))
    (in_tmp / "execs_code.py").write_text("def make(params, ctx):\n    raise RuntimeError('no scheduler here')\n")
    reg = _registry(in_tmp, '[plugins]\nlocal = ["execs.py"]\n')
    assert reg.get("executor", "local").provider.source == "builtin"
    assert reg.get("executor", "local@execs").entry == "execs_code:make"
    with pytest.raises(PluginRunError, match=r"executor 'boom-exec' from local plugin .*no scheduler here"):
        make_executor("boom-exec", {}, ExecutorContext(root=in_tmp), reg)
    sys.modules.pop("execs_code", None)
