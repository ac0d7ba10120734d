"""The start-up path stays light: no torch for --help/plugins/list/show, no textual headless."""

import json
import subprocess
import sys

CHECK = """
import sys, json
from typer.testing import CliRunner
from demtui.cli import app
runner = CliRunner()
for args in (["--help"], ["plugins"], ["list"], ["show", "df-uap"], ["plugins", "--json"], ["show", "ray"],
             ["list", "executors"], ["reproduce", "--list"], ["run", "--help"], ["list", "observers"],
             ["show", "tensorboard"], ["show", "mlflow"], ["show", "wandb"], ["report", "--help"]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
print(json.dumps({m: m in sys.modules for m in HEAVY}))
"""
HEAVY = ("torch", "torchvision", "timm", "textual", "ray", "submitit", "tensorboard", "mlflow", "wandb")


def test_catalogue_commands_never_import_torch_textual_executors_or_trackers():
    out = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + CHECK], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == dict.fromkeys(HEAVY, False)


def test_headless_engine_modules_never_import_textual():
    code = ("import sys; import demtui.engine, demtui.stages, demtui.prepare, demtui.progress_view; "
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_source_checkout_finds_the_builtin_plugins_without_installing(tmp_path):
    """``PYTHONPATH=.`` in a checkout (the GPU box's own python): plugins/ serves as demtui.plugins."""
    import os
    from pathlib import Path

    import pluggy

    root = Path(__file__).resolve().parent.parent
    deps = Path(pluggy.__file__).resolve().parent.parent  # site-packages, without its .pth (editable) hooks: -S
    code = ("import json, demtui.plugins; from demtui.registry import get_registry; "
            "print(json.dumps([demtui.plugins.__file__, get_registry().get('defense', 'democratic').name]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(deps)])}
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=tmp_path).stdout
    path, name = json.loads(out.strip().splitlines()[-1])
    assert Path(path) == root / "plugins" / "__init__.py" and name == "democratic"
