"""`demtui plugins`, `list` and `show`: what is installed and what it takes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from demtui.commands.common import STATE, RegistryOpt, escape, guard, load_registry, stderr


@guard
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Also import every plugin in a fresh interpreter (it must not "
                                                       "import torch) and load every component's code; report every "
                                                       "problem and exit 2 if there is one.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Show every plugin, where it came from, what it provides and any problem."""
    reg = load_registry(registry, check_defaults=False)
    problems: list[str] = []
    if check:
        from demtui.plugin_check import check_registry

        problems = check_registry(reg)
    if as_json:
        doc: dict[str, Any] = {"plugins": [p.as_dict() for p in reg.plugins], "registry_files": reg.config.sources}
        if check:
            doc["check"] = problems
        typer.echo(json.dumps(doc, indent=2))
    else:
        _plugins_table(reg)
    if check:
        for problem in problems:
            stderr(f"[red]problem:[/] {escape(problem)}")
        if problems:
            raise typer.Exit(2)
        stderr("Every plugin passed the checks.", markup=False)


def _plugins_table(reg: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="demtui plugins")
    for col in ("Plugin", "Source", "Status", "Provides / problem"):
        table.add_column(col)
    for p in reg.plugins:
        detail = "; ".join(p.problems + ([", ".join(p.provides)] if p.provides and p.problems else []))
        detail = detail or ", ".join(p.provides)
        style = {"failed": "red", "partial": "yellow", "empty": "yellow", "disabled": "dim"}.get(p.status, "")
        source = p.source + (f" ({p.package} {p.version})" if p.package else "")
        table.add_row(p.name, source, f"[{style}]{p.status}[/]" if style else p.status, escape(detail))
    Console().print(table)
    if STATE["debug"]:
        for p in reg.plugins:
            for trace in p.traces:
                stderr(f"--- {p.name}", markup=False)
                stderr(trace.rstrip(), markup=False)


@guard
def list_(
    kind: Annotated[Optional[str], typer.Argument(help="models, datasets, layers, attacks or defenses.")] = None,
    pattern: Annotated[str, typer.Argument(help="Glob over names, e.g. 'df*'.")] = "*",
    registry: RegistryOpt = None,
) -> None:
    """List components by kind (all kinds when none is given)."""
    from demtui.components import KIND_WORDS
    from demtui.errors import SpecError, did_you_mean

    reg = load_registry(registry, warn=True)
    if kind is not None and kind not in KIND_WORDS:
        raise SpecError(f"Unknown kind '{kind}'." + did_you_mean(kind, KIND_WORDS) + f" Use one of {', '.join(KIND_WORDS)}.")
    for word, k in KIND_WORDS.items():
        if kind is None or kind == word:
            typer.echo(f"{word}:")
            for comp in reg.list(k, pattern):
                typer.echo(f"  {reg.ref_of(comp):<14} {comp.summary}")


@guard
def show(name: Annotated[str, typer.Argument(help="A component name, e.g. df-uap.")], registry: RegistryOpt = None) -> None:
    """Show a component's parameters, defaults and help."""
    from rich.console import Console
    from rich.table import Table

    from demtui.errors import UnknownComponentError, did_you_mean
    from demtui.names import split_ref

    reg = load_registry(registry)
    base, qualifier = split_ref(name)
    found = reg.find(base.partition(":")[0] + (f"@{qualifier}" if qualifier else ""))
    if not found:
        raise UnknownComponentError(f"No component is called '{name}'." + did_you_mean(name, reg.all_names())
                                    + " Run 'demtui list' to see them all.")
    console = Console()
    for comp in found:
        origin = comp.provider.describe() if comp.provider else "no plugin"
        console.print(f"[bold]{escape(reg.ref_of(comp))}[/] ({comp.kind}, from {escape(origin)}): {escape(comp.summary)}")
        if comp.help:
            console.print(escape(comp.help))
        for label, value in _extras(comp):
            console.print(f"  {label}: {escape(value)}")
        if len(comp.params):
            table = Table(show_header=True)
            for col in ("Param", "Type", "Default", "Range", "Help"):
                table.add_column(col)
            for p in comp.params:
                budget = p.name == getattr(comp, "budget_param", None) or "eps" in p.name
                table.add_row(*(escape(cell) for cell in (p.name, p.type, _fmt_default(p.default, budget),
                                                         p.describe_range(), p.help)))
            console.print(table)


def _extras(comp: Any) -> list[tuple[str, str]]:
    out = []
    for field in ("family", "examples", "offline", "targeted", "untargeted", "threat", "budget_param", "changes",
                  "known_uaps", "rebuild", "matches", "repair", "extra", "needs"):
        if hasattr(comp, field):
            value = getattr(comp, field)
            if field in ("rebuild", "extra", "needs") and not value:
                continue
            out.append((field.replace("_param", ""), ", ".join(value) if isinstance(value, tuple) else str(value)))
    if hasattr(comp, "engine_params"):
        out.append(("engine reads", ", ".join(comp.engine_params()) or "none (no repair subset)"))
    for rule in getattr(comp.params, "rules", ()):
        out.append(("rule", rule.message))
    if comp.provider and comp.provider.distribution:
        out.append(("distribution", f"{comp.provider.distribution} {comp.provider.version}"))
    if hasattr(comp, "layers") and isinstance(getattr(comp, "layers"), tuple):
        out.append(("layers", ", ".join(f"{r}={p}" for r, p in comp.layers)))
    return out


def _fmt_default(value: Any, budget: bool = False) -> str:
    """Budgets (ε-like) on the 1/255 pixel grid read as k/255, the way the paper writes them; other floats as floats."""
    if isinstance(value, float):
        on_grid = budget and 0 < value < 1 and abs(value * 255 - round(value * 255)) < 1e-9
        return f"{round(value * 255)}/255" if on_grid else f"{value:g}"
    return "—" if value is None else str(value)
