"""`demtui train`, `report` and `new-plugin`: the smaller commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from demtui.commands.common import RegistryOpt, guard, load_registry


@guard
def train(
    model: Annotated[str, typer.Option(help="Model reference, e.g. smallcnn or wrn:16-2.")] = "smallcnn",
    dataset: Annotated[str, typer.Option(help="Dataset name.")] = "shapes",
    out: Annotated[Path, typer.Option("--out", help="Where to write the checkpoint (.safetensors).")] = Path("victim.safetensors"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="victim.param=value, model.param=…, dataset.param=…")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Train a victim model with the standard recipe and save its checkpoint."""
    from demtui import spec as specmod
    from demtui.train_cmd import train_to_file

    reg = load_registry(registry)
    overlay = specmod.merge({"model": {"name": model}, "dataset": {"name": dataset},
                             "run": {"device": device, "seed": seed}}, specmod.parse_set(set_ or []))
    run_spec = specmod.resolve(specmod.merge(specmod.quickstart_dict(), overlay), reg)
    result = train_to_file(run_spec, reg, out)
    from demtui.jsonsafe import dumps

    typer.echo(dumps({k: v for k, v in result.items() if v is not None}, indent=2))


@guard
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory, a grid folder or a reproduction.")],
           fmt: Annotated[Optional[str], typer.Option("--format", help="Print only the table, as md, csv or tex (LaTeX booktabs): per-target rows; a grid's mean ± std over seeds.")] = None) -> None:
    """Regenerate a run's report.md (or a grid's table) from what is on disk and print it."""
    from demtui.errors import SpecError  # a wrong path is bad input: exit 2

    if fmt is not None:
        from demtui import tables

        tables.check_format(fmt)  # an unknown format fails before any file is read
        if (run_dir / "reproduce.json").exists():
            from demtui.reproduce.render import rebuild as rebuild_reproduction

            rebuild_reproduction(run_dir)
            typer.echo((run_dir / f"table.{fmt}").read_text(encoding="utf-8"), nl=False)
        elif (run_dir / "sweep.json").exists():
            typer.echo(tables.export_grid(run_dir, fmt), nl=False)
        elif (run_dir / "results.json").exists():
            typer.echo(tables.export_run(run_dir, fmt), nl=False)
        else:
            raise SpecError(f"{run_dir} is not a demtui run directory or grid folder (no results.json or sweep.json); "
                            "pass a folder under runs/.")
        return

    if (run_dir / "reproduce.json").exists():
        from demtui.reproduce.render import rebuild as rebuild_reproduction

        rebuild_reproduction(run_dir)
        typer.echo((run_dir / "table.md").read_text(encoding="utf-8"))
        return
    if (run_dir / "sweep.json").exists():
        from demtui.grid import rebuild_table

        typer.echo(rebuild_table(run_dir).read_text(encoding="utf-8"))
        return
    from demtui.report import rebuild_report

    if not (run_dir / "results.json").exists():
        raise SpecError(f"{run_dir} is not a demtui run directory (no results.json); pass a folder under runs/.")
    path = rebuild_report(run_dir)
    typer.echo(path.read_text(encoding="utf-8"))


@guard
def new_plugin(
    name: Annotated[str, typer.Argument(help="Plugin name, e.g. my-uap.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the package.")] = Path("."),
) -> None:
    """Create a working plugin package (one attack, one defense, contract tests) to edit."""
    from demtui.scaffold import new_plugin as scaffold

    root = scaffold(name, directory)
    typer.echo(f"Created {root}. Next, in the project that uses demtui: 'uv add --editable {root}' (kept by uv sync; "
               f"or 'pip install -e {root}'), then 'demtui list attacks' and 'pytest {root}'.")
