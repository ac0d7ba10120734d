"""`demtui reproduce`: one of the paper's tables as a grid, the paper's values beside ours."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from demtui.commands.common import RegistryOpt, guard, load_registry
from demtui.commands.run import grid_exit


@guard
def reproduce(
    table: Annotated[Optional[str], typer.Argument(help="A paper table: table2 … table9 (see --list).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the reproducible tables and their presets.")] = False,
    preset: Annotated[str, typer.Option("--preset", help="tiny (offline, minutes on a CPU) or paper (the paper's models and data).")] = "tiny",
    out: Annotated[Optional[Path], typer.Option("--out", help="Grid folder (default runs/<table>-<preset>-<time>).")] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds per cell, comma-separated; rows show mean ± std.")] = "0",
    data_root: Annotated[str, typer.Option("--data-root", help="Where the paper preset finds its datasets.")] = "~/data",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="section.param=value for every cell (executor.k=v for the executor).")] = None,
    plan_only: Annotated[bool, typer.Option("--plan", help="Validate and print the cells without running them.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the grid in --out: only unfinished cells run.")] = False,
    executor: Annotated[Optional[str], typer.Option("--executor", help="inline (default), local, ray, slurm.")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", help="Runs at once (local executor; implies it).", min=1)] = None,
    devices: Annotated[Optional[str], typer.Option("--devices", help="Devices to spread runs over (local executor).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join (implies --executor ray).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Reproduce one of the paper's tables: a grid with the paper's values beside ours."""
    from demtui import launch
    from demtui import spec as specmod
    from demtui import sweep as sweepmod
    from demtui.errors import SpecError
    from demtui.reproduce import driver

    if list_ or table is None:
        _list_tables(as_json)
        return
    seed_list = _ints(seeds, "--seeds")
    overrides, executor_section = sweepmod.split_executor(specmod.parse_set(set_ or []))
    tdef, cells = driver.planned(table, preset, seeds=seed_list, data_root=data_root, overrides=overrides)
    reg = load_registry(registry)
    grid_cells = driver.grid_cells(cells, reg)
    if plan_only:
        for cell in grid_cells:
            typer.echo(f"{cell.label}\n" + "".join(f"    {line}\n" for line in cell.spec_toml.splitlines()))
        return
    root = out or Path("runs") / f"{tdef.id}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (root / "sweep.json").exists() and not resume:
        raise SpecError(f"{root} already holds a grid; pass --resume to continue it or choose another --out.")
    choice = launch.choose_executor(executor_section, executor, jobs, devices, ray_address)
    driver.write_plan(root, tdef, preset, cells)
    runner = launch.build_executor(choice, reg, root, registry_file=str(registry.resolve()) if registry else None,
                                   quiet=quiet)
    grid = launch.run_grid(root, grid_cells, runner, axes={"row": [r.id for r in tdef.presets[preset].rows]},
                           resume=resume, quiet=quiet, extra={"table": tdef.id, "preset": preset})
    files = driver.finish(root, tdef, preset, cells)
    if as_json:
        entries = [c.manifest_entry(root) for c in grid.cells]
        from demtui.jsonsafe import dumps

        sys.stdout.write(dumps({"run_dir": str(root), "table": tdef.id, "preset": preset, "status": grid.status,
                                "files": [str(f) for f in files], "sweep": entries}) + "\n")
    else:
        typer.echo((root / "table.md").read_text(encoding="utf-8"))
        typer.echo("Wrote " + ", ".join(str(f) for f in files))
    grid_exit(grid)


def _list_tables(as_json: bool) -> None:
    from demtui.reproduce import driver, load_table, table_ids

    rows = []
    for tid in table_ids():
        tdef = load_table(tid)
        counts = {}
        for name in tdef.presets:
            _, cells = driver.planned(tid, name, seeds=[0], data_root="~/data", overrides={})
            counts[name] = len(cells)
        rows.append({"id": tid, "title": tdef.title, "source": tdef.source, "presets": list(tdef.presets),
                     "cells": counts})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        cells = ", ".join(f"{p} {n} runs" for p, n in r["cells"].items())
        typer.echo(f"{r['id']:<8} {r['title']} [{cells}]")


def _ints(text: str, flag: str) -> list[int]:
    from demtui.errors import SpecError

    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise SpecError(f"{flag} must be comma-separated whole numbers, e.g. 0,1,2, not {text!r}.") from None
    if not values or any(v < 0 for v in values):
        raise SpecError(f"{flag} needs at least one seed ≥ 0, e.g. 0,1,2.")
    return values
