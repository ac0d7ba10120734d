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

_INIT = Template('''"""$name: demtui plugin metadata (plain data, no torch: `demtui list` stays instant)."""

from demtui.components import Attack, Defense
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

DEMTUI_API = 1


@hookimpl
def demtui_attacks() -> list[Attack]:
    return [Attack(
        name="$slug-attack",
        summary="$name: a universal perturbation from signed batch-mean gradient steps.",
        entry="$module.attack:craft",
        targeted=True,
        untargeted=True,
        params=schema(
            Param("eps", "float", 10 / 255, "L-inf budget.", min=0, max=1, min_inclusive=False),
            Param("iterations", "int", 100, "Gradient steps.", min=1),
            Param("step_size", "float", 1 / 255, "Step per iteration.", min=0, min_inclusive=False),
            Param("batch_size", "int", 64, "Images per step.", min=1),
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
            Param("epochs", "int", 2, "Passes over the clean subset.", min=1),
            Param("lr", "float", 1e-3, "SGD learning rate.", min=0, min_inclusive=False),
            Param("noise", "float", 8 / 255, "Uniform noise amplitude.", min=0, max=1),
            Param("batch_size", "int", 32, "Images per step.", min=1),
        ),
    )]
''')

_ATTACK = '''"""The attack: replace the loop with your algorithm; keep the contract (see demtui.testing)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from demtui.perturbation import AdditivePerturbation


def craft(model: torch.nn.Module, data: Any, target: int | None, params: dict[str, Any], ctx: Any) -> AdditivePerturbation:
    eps = params["eps"]
    g = torch.Generator().manual_seed(ctx.seed)
    model.eval()
    delta = torch.zeros((1, *data.x.shape[1:]), device=ctx.device)
    for it in range(params["iterations"]):
        idx = torch.randint(0, data.x.shape[0], (min(params["batch_size"], data.x.shape[0]),), generator=g)
        idx = idx.to(data.x.device)
        xb = data.x[idx].float() / 255
        delta.requires_grad_(True)
        logits = model((xb + delta).clamp(0, 1))
        labels = data.y[idx] if target is None else torch.full_like(data.y[idx], target)
        loss = F.cross_entropy(logits, labels) * (-1 if target is None else 1)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = (delta - params["step_size"] * grad.sign()).clamp(-eps, eps)
        ctx.progress(it + 1, params["iterations"], {"loss": float(loss.detach())})
        if ctx.should_stop():
            break
    return AdditivePerturbation(delta.detach().cpu(), eps)
'''

_DEFENSE = '''"""The defense: fine-tunes the copy the engine passes; the original weights stay untouched."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from demtui.contracts import DefenseResult


def finetune(model: torch.nn.Module, data: Any, params: dict[str, Any], ctx: Any) -> DefenseResult:
    g = torch.Generator().manual_seed(ctx.seed)
    opt = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9)
    n, size = data.x.shape[0], params["batch_size"]
    losses = []
    model.train()
    for epoch in range(params["epochs"]):
        order = torch.randperm(n, generator=g).to(data.x.device)
        for start in range(0, n, size):
            idx = order[start:start + size]
            xb = data.x[idx].float() / 255
            noise = (torch.rand(xb.shape, generator=g).to(xb.device) * 2 - 1) * params["noise"]
            loss = F.cross_entropy(model((xb + noise).clamp(0, 1)), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        losses.append(float(loss.detach()))
        ctx.progress(epoch + 1, params["epochs"], {"loss": losses[-1]})
    return DefenseResult(model=model.eval(), history={"loss": losses})
'''

_TEST = Template('''"""Contract checks from demtui.testing: run them with `pytest`."""

from demtui.testing import check_attack, check_defense


def test_attack_contract() -> None:
    check_attack("$slug-attack")
    check_attack("$slug-attack", target=None)


def test_defense_contract() -> None:
    check_defense("$slug-defense")
''')

_README = Template('''# $dist

A demtui plugin ($name): one attack (`$slug-attack`) and one defense (`$slug-defense`).

    pip install -e .            # demtui finds it through the "demtui" entry-point group
    demtui list attacks         # $slug-attack appears
    pytest                      # demtui.testing contract checks

Edit `src/$module/attack.py` and `src/$module/defense.py`; metadata lives in
`src/$module/__init__.py` (keep torch out of it).
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
    values = {"name": name, "slug": slug.removeprefix("demtui-"), "dist": dist, "module": module}
    files = {
        "pyproject.toml": _PYPROJECT.substitute(values),
        "README.md": _README.substitute(values),
        f"src/{module}/__init__.py": _INIT.substitute(values),
        f"src/{module}/attack.py": _ATTACK,
        f"src/{module}/defense.py": _DEFENSE,
        "tests/test_contract.py": _TEST.substitute(values),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
