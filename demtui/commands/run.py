"""`demtui run`: one run or a grid, inline or through an executor."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from demtui.commands.common import RegistryOpt, guard, load_registry, stderr
from demtui.errors import DemtuiError


@guard
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
    rerun: Annotated[Optional[str], typer.Option("--rerun", help="Redo STAGE and every stage after it in the run in --out (implies --resume), e.g. attack.")] = None,
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

    reg = load_registry(registry, warn=True)
    if rerun is not None:
        resume = True
    if resume and out is None:
        raise DemtuiError(f"{'--rerun' if rerun else '--resume'} needs --out pointing at the run directory to continue.")
    if resume:
        from demtui.resume import check_resumable

        check_resumable(out)  # a typo'd path must not start a new run
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
        if rerun is not None:
            raise DemtuiError("--rerun works on one run, not a grid; rerun a cell's own directory instead.")
        cells = launch.plan_cells(data, axes, reg)  # every combination valid before any runs
        from demtui.preflight import preflight_cells

        preflight_cells(cells, reg)  # and every check that needs no data, before any cell starts
        first = specmod.resolve(sweepmod.variants(data, axes)[0].data, reg)
        root = out or Path("runs") / f"sweep-{_slug(first)}-{time.strftime('%Y%m%d-%H%M%S')}"
        launch.write_sweep_spec(root, data, axes, resume)
        runner = launch.build_executor(choice, reg, root, registry_file=registry_file, quiet=quiet)
        grid = launch.run_grid(root, cells, runner, axes=axes, resume=resume, quiet=quiet)
        launch.print_grid(grid, as_json)
        grid_exit(grid)
        return
    run_spec = specmod.resolve(data, reg)
    run_dir = out or Path("runs") / f"{_slug(run_spec)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if rerun is not None or not choice.inline:  # inline, the engine runs it first thing
        from demtui.preflight import preflight

        preflight(run_spec, reg)  # names, files, layers, targets: seconds, before any data or training
    if rerun is not None or (resume and not choice.inline):
        # Done here under the run's lock, so a background worker (which reads the saved spec) runs the new one.
        from demtui.resume import rerun as rerun_stages

        dropped, notes = rerun_stages(run_dir, run_spec, reg, rerun)
        if not quiet and rerun is not None:
            stderr(f"Re-running {', '.join(dropped) or rerun} in {run_dir}.", markup=False)
        if not quiet and notes:
            stderr(f"Spec changes for stages that had not finished: {'; '.join(notes)}.", markup=False)
    if not choice.inline:
        runner = launch.build_executor(choice, reg, run_dir, registry_file=registry_file, quiet=quiet)
        handle = launch.wait_single(runner, run_spec, run_dir, resume=resume)
        if handle.status != "finished":
            code = handle.returncode if handle.returncode in (2, 3, 130) else 3
            if code != 130:
                message = handle.message.replace(": error: ", ": ").removeprefix("error: ")  # the worker's own label
                stderr(f"error: {message}", markup=False)
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


def grid_exit(grid: Any) -> None:
    """Exit 130 for a cancelled grid, 3 (with one sentence) when some runs did not finish."""
    if grid.status == "cancelled":
        raise typer.Exit(130)
    if grid.status == "failed":
        failed = sum(c.status != "finished" for c in grid.cells)
        stderr(f"error: {failed} of {len(grid.cells)} runs did not finish; their reasons are in "
                f"{grid.root / 'sweep.md'} (fix them, then --resume the grid).", markup=False)
        raise typer.Exit(3)


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
