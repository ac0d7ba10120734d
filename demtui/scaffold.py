"""`demtui new-plugin NAME`: write a working plugin package from templates (stdlib only).

The package it writes registers one attack and one defense through the entry-point
group ``demtui``, passes the ``demtui.testing`` contract checks out of the box, and is
meant to be edited: the algorithms are short, correct starting points.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from demtui.errors import SpecError

_PYPROJECT = Template('''[project]
name = "$dist"
version = "0.1.0"
description = "A demtui plugin: $name."
requires-python = ">=3.11"
dependencies = ["demtui"]

[project.entry-points.demtui]
$module = "$module"

[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[tool.setuptools.packages.find]
where = ["src"]
''')

_INIT = Template('''"""$name: demtui plugin metadata (plain data, no torch: `demtui list` stays instant).

Everything comes from demtui.api, demtui's supported plugin API. Heavy code lives in
attack.py and defense.py and is imported only when a run uses the component.
"""

from demtui.api import Attack, Defense, Param, Rule, hookimpl, schema, subset_params, training_params

DEMTUI_API = $api  # the demtui plugin API this plugin was written for


@hookimpl
def demtui_attacks() -> list[Attack]:
    return [Attack(
        name="$slug-attack",
        summary="$name: a universal perturbation from signed batch-mean gradient steps.",
        entry="$module.attack:craft",
        targeted=True,
        untargeted=True,
        threat="linf",  # the engine checks every UAP: L-inf norm <= params["eps"]
        params=schema(
            Param("eps", "float", 10 / 255, "L-inf budget.", min=0, max=1, min_inclusive=False),
            Param("iterations", "int", 100, "Gradient steps.", min=1),
            Param("step_size", "float", 1 / 255, "Step per iteration.", min=0, min_inclusive=False),
            Param("beta", "float", 12.0, "Clip of the cross-entropy (sPGD's beta).", min=0, min_inclusive=False),
            Param("batch_size", "int", 64, "Images per step.", min=1),
            # checked whenever a spec is resolved, before anything runs
            rules=[Rule("step_size ({step_size:.4f}) must not exceed eps ({eps:.4f})",
                        lambda p: p["step_size"] <= p["eps"])],
        ),
    )]


@hookimpl
def demtui_defenses() -> list[Defense]:
    return [Defense(
        name="$slug-defense",
        summary="$name: fine-tune on clean data with random-noise augmentation.",
        entry="$module.defense:finetune",
        changes="weights",
        params=schema(
            Param("noise", "float", 8 / 255, "Uniform noise amplitude.", min=0, max=1),
            *training_params(epochs=2, lr=1e-3),  # epochs, lr, momentum, batch_size, ... of demtui's loop
            *subset_params(fraction=0.05),  # the engine passes a clean repair subset of this size
        ),
    )]
''')

_ATTACK = '''"""The attack: replace the loop with your algorithm; keep the contract (see demtui.testing)."""

from __future__ import annotations

from typing import Any

import torch

from demtui.api import (AdditivePerturbation, AttackData, as_float, attack_labels, clipped_ce, eval_mode,
                        project_linf, sample_batch)


def craft(model: torch.nn.Module, data: AttackData, target: int | None, params: dict[str, Any],
          ctx: Any) -> AdditivePerturbation:
    eps, steps = params["eps"], params["iterations"]
    g = torch.Generator().manual_seed(ctx.seed + (target or 0))  # CPU generator: the same UAP on any device
    delta = torch.zeros((1, *data.x.shape[1:]), device=ctx.device)
    with eval_mode(model):  # frozen weights, eval BatchNorm; restored afterwards
        for it in range(steps):
            xb = as_float(data.x[sample_batch(data.x.shape[0], params["batch_size"], g, data.x.device)])
            labels = attack_labels(model, xb, target)  # the target, or the clean prediction
            delta.requires_grad_(True)
            with ctx.autocast():
                logits = model((xb + delta).clamp(0, 1))
            loss = clipped_ce(logits, labels, beta=params["beta"], targeted=target is not None)  # to ascend
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = project_linf(delta + params["step_size"] * grad.sign(), eps)
            ctx.progress(it + 1, steps, {"loss": float(loss.detach())})  # also where cancellation lands
            if ctx.should_stop():
                break
    return AdditivePerturbation(delta.detach().cpu(), eps)
'''

_DEFENSE = '''"""The defense: one batch loss; demtui's own fine-tuning loop does the rest (as Democratic Training)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from demtui.api import DefenseData, DefenseResult, train_defense


def finetune(model: torch.nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    g = torch.Generator().manual_seed(ctx.seed)

    def batch_loss(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        noise = (torch.rand(x.shape, generator=g).to(x.device) * 2 - 1) * params["noise"]
        return F.cross_entropy(model((x + noise).clamp(0, 1)), y), {}

    # the copy the engine passed is trained in place; the original weights stay untouched
    return train_defense(model, data, params, ctx, batch_loss, name="$slug-defense", generator=g)
'''

_TEST = Template('''"""Contract checks from demtui.testing: run them with `pytest`."""

from demtui.testing import check_attack, check_defense, check_light_import, check_metadata


def test_attack_contract() -> None:
    check_attack("$slug-attack")
    check_attack("$slug-attack", target=None)


def test_defense_contract() -> None:
    check_defense("$slug-defense")


def test_metadata_and_light_import() -> None:
    check_metadata("$slug-attack", kind="attack")
    check_light_import("$module")  # importing the plugin (as every demtui command does) must not import torch
''')

_README = Template('''# $dist

A demtui plugin ($name): one attack (`$slug-attack`) and one defense (`$slug-defense`).

Install it into the environment that runs demtui, in a way `uv sync` keeps:

    uv add --editable ./$dist     # in your uv project: a path dependency in pyproject.toml
    pip install -e ./$dist        # or, without uv

(`uv pip install -e` is undone by the next `uv sync`, which removes what the lockfile does not list.)

    demtui list attacks            # $slug-attack appears
    demtui plugins --check         # imports stay light, every entry loads
    pytest $dist                  # demtui.testing contract checks

Edit `src/$module/attack.py` and `src/$module/defense.py`; metadata lives in
`src/$module/__init__.py` (keep torch out of it). docs/plugins.md in demtui has the contract.
''')


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
    if not slug or not slug[0].isalpha():
        raise SpecError(f"Plugin name '{name}' needs to start with a letter; try e.g. 'my-uap'.")
    return slug


def new_plugin(name: str, directory: Path) -> Path:
    """Write the package into ``directory/demtui-<slug>``; refuses to overwrite anything."""
    slug = slugify(name)
    dist = slug if slug.startswith("demtui-") else f"demtui-{slug}"
    module = dist.replace("-", "_")
    root = Path(directory) / dist
    if root.exists():
        raise SpecError(f"{root} already exists; choose another name or directory (nothing was written).")
    from demtui.hookspecs import API_VERSION

    values = {"name": name, "slug": slug.removeprefix("demtui-"), "dist": dist, "module": module, "api": API_VERSION}
    files = {
        "pyproject.toml": _PYPROJECT.substitute(values),
        "README.md": _README.substitute(values),
        f"src/{module}/__init__.py": _INIT.substitute(values),
        f"src/{module}/attack.py": _ATTACK,
        f"src/{module}/defense.py": Template(_DEFENSE).substitute(values),
        "tests/test_contract.py": _TEST.substitute(values),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
