"""The `demtui` command line (typer). Heavy imports happen inside commands only.

Exit codes: 0 done · 1 internal error (a bug; --debug shows the trace) · 2 bad input
(unknown names, bad params, missing data, no such device) · 3 run failed (a stage
failed, the model collapsed, the run directory is corrupt) · 130 cancelled (finished
stages are kept; --resume continues).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from demtui.errors import DemtuiError

app = typer.Typer(add_completion=False, invoke_without_command=True, no_args_is_help=False,
                  help="Test vision models against universal adversarial perturbations and repair them.",
                  rich_markup_mode=None, pretty_exceptions_enable=False)
_STATE: dict[str, Any] = {"debug": False, "registry": None}

RegistryOpt = Annotated[Optional[Path], typer.Option("--registry", help="A registry.toml merged over the built-in one.")]


def _stderr(message: str, markup: bool = True) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(message, markup=markup)


def _guard(fn):
    """Turn DemtuiError into one sentence and an exit code; never a bare traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DemtuiError as exc:
            trace = getattr(exc, "trace", "")  # a plugin's failure carries the plugin's own traceback
            if _STATE["debug"] and not trace:
                raise
            if _STATE["debug"]:
                _stderr(trace.rstrip(), markup=False)
            label = "internal error:" if exc.exit_code == 1 else "error:"
            _stderr(f"[red]{label}[/] {_escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _stderr("[yellow]Interrupted.[/]")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:
            if _STATE["debug"]:
                raise
            _stderr(f"[red]internal error:[/] {type(exc).__name__}: {exc} (re-run with --debug for the trace "
                    "and report it).")
            raise typer.Exit(1) from None
    return wrapper


@app.callback()
def main_callback(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    _STATE["debug"] = debug
    if version:
        from demtui import __version__

        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        # Bare `demtui` opens the TUI on a terminal; piped or redirected it prints help.
        if not (sys.stdout.isatty() and sys.stdin.isatty()):
            typer.echo(ctx.get_help())
            return
        from demtui.tui.app import run_tui  # imported here so --help and the subcommands stay fast

        run_tui()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _registry(path: Path | None, warn: bool = False):
    """The shared registry; with ``warn``, one line on stderr when plugins did not load cleanly."""
    from demtui.registry import describe_broken, get_registry

    reg = get_registry(path)
    line = describe_broken(reg) if warn else ""
    if line:
        _stderr(f"[yellow]warning:[/] {_escape(line)}")
        if _STATE["debug"]:
            for rec in reg.broken():
                for trace in rec.traces:
                    _stderr(trace.rstrip(), markup=False)
    return reg


@app.command()
@_guard
def run(
    headless: Annotated[bool, typer.Option("--headless", help="Run here with a progress view (for scripts and CI).")] = True,
    spec: Annotated[Optional[Path], typer.Option("--spec", help="A RunSpec TOML file.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model, e.g. smallcnn, torchvision:resnet50, wrn:34-10.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset, e.g. shapes, cifar10, imagefolder.")] = None,
    attack: Annotated[Optional[str], typer.Option(help="Attack, e.g. df-uap.")] = None,
    defense: Annotated[Optional[str], typer.Option(help="Defense, e.g. democratic, or none.")] = None,
    targets: Annotated[Optional[str], typer.Option(help="Target classes: indices or names, comma-separated.")] = None,
    layer: Annotated[Optional[str], typer.Option(help="Entropy layer: a role (deep2, …) or a module path.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default runs/<name>-<time>).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="section.param=value, repeatable.")] = None,
    sweep: Annotated[Optional[list[str]], typer.Option("--sweep", help="section.param=v1,v2: one run per value (repeatable: every combination).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run (or grid) in --out, skipping finished stages.")] = False,
    executor: Annotated[Optional[str], typer.Option("--executor", help="Where runs execute: inline (default), local, ray, slurm; see 'demtui list executors'.")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", help="Runs at once (local executor; implies it).", min=1)] = None,
    devices: Annotated[Optional[str], typer.Option("--devices", help="Devices to spread runs over, e.g. cuda:0,cuda:1 (local executor; implies it).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join: auto, ray://HOST:10001 (implies --executor ray).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout; progress on stderr.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress view.")] = False,
    observer: Annotated[Optional[list[str]], typer.Option("--observer", help="Mirror the run into a tracker: tensorboard, mlflow, wandb (repeatable; params: --set observer.NAME.param=value).")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Run a spec (default: the offline quickstart) and print the Before/After table."""
    from demtui import spec as specmod

    reg = _registry(registry, warn=True)
    if resume and out is None:
        raise DemtuiError("--resume needs --out pointing at the run directory to continue.")
    overlay = _flag_overlay(model, dataset, attack, defense, targets, layer, device, seed)
    overlay = specmod.merge(overlay, specmod.parse_set(set_ or []))
    saved = out / "spec.toml" if out else None
    if spec is not None:
        base = specmod.merge(specmod.quickstart_dict(), specmod.read_spec_file(spec))
    elif resume and saved is not None and saved.exists():
        base = specmod.read_spec_file(saved)
    else:
        base = specmod.quickstart_dict()
    from demtui import launch
    from demtui import sweep as sweepmod

    data, executor_section = sweepmod.split_executor(specmod.merge(base, overlay))
    data = specmod.with_observers(data, observer or [])
    data, axes = sweepmod.split(data)
    axes.update(sweepmod.parse_sweep_flags(sweep or []))
    choice = launch.choose_executor(executor_section, executor, jobs, devices, ray_address)
    registry_file = str(registry.resolve()) if registry else None
    if axes:
        cells = launch.plan_cells(data, axes, reg)  # every combination valid before any runs
        first = specmod.resolve(sweepmod.variants(data, axes)[0].data, reg)
        root = out or Path("runs") / f"sweep-{_slug(first)}-{time.strftime('%Y%m%d-%H%M%S')}"
        launch.write_sweep_spec(root, data, axes, resume)
        runner = launch.build_executor(choice, reg, root, registry_file=registry_file, quiet=quiet)
        grid = launch.run_grid(root, cells, runner, axes=axes, resume=resume, quiet=quiet)
        launch.print_grid(grid, as_json)
        _grid_exit(grid)
        return
    run_spec = specmod.resolve(data, reg)
    run_dir = out or Path("runs") / f"{_slug(run_spec)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not choice.inline:
        runner = launch.build_executor(choice, reg, run_dir, registry_file=registry_file, quiet=quiet)
        handle = launch.wait_single(runner, run_spec, run_dir, resume=resume)
        if handle.status != "finished":
            code = handle.returncode if handle.returncode in (2, 3, 130) else 3
            if code != 130:
                _stderr(f"error: {handle.message}", markup=False)
            raise typer.Exit(code)
        from demtui.engine import Outcome
        from demtui.store import RunStore

        results = RunStore(run_dir).results
        outcome = Outcome(run_dir, "finished", results, results.get("summary", {}))
    else:
        outcome = _execute(run_spec, reg, run_dir, resume=resume, quiet=quiet)
    if as_json:
        from demtui.report import summary_json

        sys.stdout.write(summary_json(outcome) + "\n")
    else:
        _print_tables(outcome)
    if outcome.status == "cancelled":
        raise typer.Exit(130)


def _grid_exit(grid: Any) -> None:
    """Exit 130 for a cancelled grid, 3 (with one sentence) when some runs did not finish."""
    if grid.status == "cancelled":
        raise typer.Exit(130)
    if grid.status == "failed":
        failed = sum(c.status != "finished" for c in grid.cells)
        _stderr(f"error: {failed} of {len(grid.cells)} runs did not finish; their reasons are in "
                f"{grid.root / 'sweep.md'} (fix them, then --resume the grid).", markup=False)
        raise typer.Exit(3)


@app.command()
@_guard
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
    reg = _registry(registry)
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
        sys.stdout.write(json.dumps({"run_dir": str(root), "table": tdef.id, "preset": preset, "status": grid.status,
                                     "files": [str(f) for f in files], "sweep": entries}) + "\n")
    else:
        typer.echo((root / "table.md").read_text(encoding="utf-8"))
        typer.echo("Wrote " + ", ".join(str(f) for f in files))
    _grid_exit(grid)


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


def _flag_overlay(model, dataset, attack, defense, targets, layer, device, seed) -> dict[str, Any]:
    over: dict[str, Any] = {}
    for section, value in (("model", model), ("dataset", dataset), ("attack", attack), ("defense", defense)):
        if value is not None:
            over[section] = {"name": value}
    run_part = {k: v for k, v in (("targets", targets), ("layer", layer), ("device", device), ("seed", seed)) if v is not None}
    if targets is not None and not targets.strip():
        run_part["targets"] = []
    if run_part:
        over["run"] = run_part
    return over


def _slug(spec: Any) -> str:
    name = f"{spec.model.name}-{spec.attack.name}-{spec.defense.name if spec.defense else 'none'}"
    return name.replace(":", "_").replace("/", "_")


def _execute(run_spec: Any, reg: Any, run_dir: Path, *, resume: bool, quiet: bool):
    from demtui.engine import execute
    from demtui.progress_view import ProgressView

    with ProgressView(quiet=quiet) as view:
        outcome = execute(run_spec, reg, run_dir, resume=resume, listeners=[view])
    return outcome


def _print_tables(outcome: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from demtui.report import summary_rows, target_rows

    console = Console()
    table = Table(title=f"Before / After — {outcome.run_dir}")
    for col in ("Metric", "Before", "After"):
        table.add_column(col, justify="left" if col == "Metric" else "right")
    for row in summary_rows(outcome.summary):
        table.add_row(*row)
    console.print(table)
    classes = outcome.results.get("stages", {}).get("baseline", {}).get("classes")
    per = Table(title="Per target")
    for col in ("Target", "SR before", "SR after", "AAcc before", "AAcc after", "SR secondary"):
        per.add_column(col, justify="right")
    for row in target_rows(outcome.results, classes):
        per.add_row(*row)
    console.print(per)
    console.print(f"Report: {outcome.run_dir / 'report.md'}")


@app.command()
@_guard
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

    reg = _registry(registry)
    overlay = specmod.merge({"model": {"name": model}, "dataset": {"name": dataset},
                             "run": {"device": device, "seed": seed}}, specmod.parse_set(set_ or []))
    run_spec = specmod.resolve(specmod.merge(specmod.quickstart_dict(), overlay), reg)
    result = train_to_file(run_spec, reg, out)
    typer.echo(json.dumps(result, indent=2))


@app.command()
@_guard
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Also import every plugin in a fresh interpreter (it must not "
                                                       "import torch) and load every component's code; report every "
                                                       "problem and exit 2 if there is one.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Show every plugin, where it came from, what it provides and any problem."""
    reg = _registry(registry)
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
            _stderr(f"[red]problem:[/] {_escape(problem)}")
        if problems:
            raise typer.Exit(2)
        _stderr("Every plugin passed the checks.", markup=False)


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
        table.add_row(p.name, source, f"[{style}]{p.status}[/]" if style else p.status, _escape(detail))
    Console().print(table)
    if _STATE["debug"]:
        for p in reg.plugins:
            for trace in p.traces:
                _stderr(f"--- {p.name}", markup=False)
                _stderr(trace.rstrip(), markup=False)


@app.command("list")
@_guard
def list_(
    kind: Annotated[Optional[str], typer.Argument(help="models, datasets, layers, attacks or defenses.")] = None,
    pattern: Annotated[str, typer.Argument(help="Glob over names, e.g. 'df*'.")] = "*",
    registry: RegistryOpt = None,
) -> None:
    """List components by kind (all kinds when none is given)."""
    from demtui.components import KIND_WORDS
    from demtui.errors import SpecError, did_you_mean

    reg = _registry(registry, warn=True)
    if kind is not None and kind not in KIND_WORDS:
        raise SpecError(f"Unknown kind '{kind}'." + did_you_mean(kind, KIND_WORDS) + f" Use one of {', '.join(KIND_WORDS)}.")
    for word, k in KIND_WORDS.items():
        if kind is None or kind == word:
            typer.echo(f"{word}:")
            for comp in reg.list(k, pattern):
                typer.echo(f"  {reg.ref_of(comp):<14} {comp.summary}")


@app.command()
@_guard
def show(name: Annotated[str, typer.Argument(help="A component name, e.g. df-uap.")], registry: RegistryOpt = None) -> None:
    """Show a component's parameters, defaults and help."""
    from rich.console import Console
    from rich.table import Table

    from demtui.errors import UnknownComponentError, did_you_mean
    from demtui.names import split_ref

    reg = _registry(registry)
    base, qualifier = split_ref(name)
    found = reg.find(base.partition(":")[0] + (f"@{qualifier}" if qualifier else ""))
    if not found:
        raise UnknownComponentError(f"No component is called '{name}'." + did_you_mean(name, reg.all_names())
                                    + " Run 'demtui list' to see them all.")
    console = Console()
    for comp in found:
        origin = comp.provider.describe() if comp.provider else "no plugin"
        console.print(f"[bold]{_escape(reg.ref_of(comp))}[/] ({comp.kind}, from {_escape(origin)}): {_escape(comp.summary)}")
        if comp.help:
            console.print(comp.help)
        for label, value in _extras(comp):
            console.print(f"  {label}: {_escape(value)}")
        if len(comp.params):
            table = Table(show_header=True)
            for col in ("Param", "Type", "Default", "Range", "Help"):
                table.add_column(col)
            for p in comp.params:
                table.add_row(p.name, p.type, _fmt_default(p.default), p.describe_range(), p.help)
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


def _fmt_default(value: Any) -> str:
    if isinstance(value, float):
        on_grid = 0 < value < 1 and abs(value * 255 - round(value * 255)) < 1e-9
        return f"{round(value * 255)}/255" if on_grid else f"{value:g}"
    return "—" if value is None else str(value)


@app.command()
@_guard
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory, a grid folder or a reproduction.")],
           fmt: Annotated[Optional[str], typer.Option("--format", help="Print only the table, as md, csv or tex (LaTeX booktabs): per-target rows; a grid's mean ± std over seeds.")] = None) -> None:
    """Regenerate a run's report.md (or a grid's table) from what is on disk and print it."""
    from demtui.errors import RunError

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
            raise RunError(f"{run_dir} is not a demtui run directory or grid folder (no results.json or sweep.json); "
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
        raise RunError(f"{run_dir} is not a demtui run directory (no results.json); pass a folder under runs/.")
    path = rebuild_report(run_dir)
    typer.echo(path.read_text(encoding="utf-8"))


@app.command("new-plugin")
@_guard
def new_plugin(
    name: Annotated[str, typer.Argument(help="Plugin name, e.g. my-uap.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the package.")] = Path("."),
) -> None:
    """Create a working plugin package (one attack, one defense, contract tests) to edit."""
    from demtui.scaffold import new_plugin as scaffold

    root = scaffold(name, directory)
    typer.echo(f"Created {root}. Next, in the project that uses demtui: 'uv add --editable {root}' (kept by uv sync; "
               f"or 'pip install -e {root}'), then 'demtui list attacks' and 'pytest {root}'.")


def main() -> None:
    app()
