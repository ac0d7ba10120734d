"""From the command line to an executor: choose it, plan a grid's cells, drive and print it.

``demtui run`` and ``demtui reproduce`` both come through here, so ``--executor``,
``--jobs``, ``--devices`` and ``--ray-address`` mean the same everywhere. What a grid
computes (its specs) and where it runs (the executor) stay separate, as in Hydra's
launchers: the same grid resumes on another executor.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demtui.errors import SpecError


@dataclass
class ExecutorChoice:
    """The executor a command asked for: its name and its (not yet validated) params."""

    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def inline(self) -> bool:
        return self.name in ("", "inline")


def choose_executor(section: dict[str, Any], executor: str | None, jobs: int | None, devices: str | None,
                    ray_address: str | None) -> ExecutorChoice:
    """Merge a spec's ``[executor]`` table with the shortcut flags; a shortcut implies its executor."""
    params = dict(section)
    name = str(params.pop("name", "") or "")
    shortcuts = {"jobs": jobs, "devices": devices, "address": ray_address}
    for key, value in shortcuts.items():
        if value is not None:
            params[key] = value
    if executor:
        name = executor
    elif not name:
        if ray_address is not None:
            name = "ray"
        elif jobs is not None or devices is not None:
            name = "local"
    if ray_address is not None and name != "ray":
        raise SpecError(f"--ray-address only applies to --executor ray, not '{name or 'inline'}'.")
    return ExecutorChoice(name, params)


def build_executor(choice: ExecutorChoice, registry: Any, root: Path, *, registry_file: str | None,
                   quiet: bool) -> Any:
    """Validate the executor's params against its schema and build it."""
    from demtui.executors import ExecutorContext, make_executor

    name = choice.name or "inline"
    source = registry.get("executor", name)
    params = source.params.validate(choice.params, owner=f"executor {name}")
    ctx = ExecutorContext(root=root, registry_file=registry_file, listeners=_progress_views(quiet))
    return make_executor(name, params, ctx, registry)


def _progress_views(quiet: bool) -> Any:
    """The live progress view of each in-process run, opened and closed around it."""

    @contextlib.contextmanager
    def views(handle: Any) -> Iterator[list[Any]]:
        from demtui.progress_view import ProgressView

        with ProgressView(quiet=quiet) as view:
            yield [view]
    return views


def plan_cells(data: dict[str, Any], axes: dict[str, list[Any]], registry: Any) -> list[Any]:
    """Every combination as a resolved cell; all are validated before anything runs."""
    from demtui import spec as specmod
    from demtui import sweep as sweepmod
    from demtui.grid import Cell

    def accepts(section: str, name: str) -> set[str] | None:
        from demtui.errors import DemtuiError

        kind = specmod.COMPONENT_SECTIONS[section]
        try:  # registry lookups understand name@plugin references too
            comp = registry.model_source(name)[0] if kind == "model" else registry.get(kind, name)
        except DemtuiError:
            return None
        return {p.name for p in comp.params}

    cells = []
    for variant in sweepmod.variants(data, axes, accepts):
        run_spec = specmod.resolve(variant.data, registry)
        cells.append(Cell(label=variant.label, values=variant.values, spec_toml=run_spec.to_toml(),
                          device=run_spec.run["device"]))
    return cells


def write_sweep_spec(root: Path, data: dict[str, Any], axes: dict[str, list[Any]], resume: bool) -> None:
    """The grid folder's spec.toml (base spec + axes): what --resume re-plans the sweep from."""
    import tomli_w

    from demtui.store import atomic_write_text

    if (root / "sweep.json").exists() and not resume:
        raise SpecError(f"{root} already holds a sweep; pass --resume to continue it or choose another --out.")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "spec.toml", tomli_w.dumps({**data, "sweep": axes}))


def run_grid(root: Path, cells: list[Any], executor: Any, *, axes: dict[str, list[Any]], resume: bool,
             quiet: bool, extra: dict[str, Any] | None = None) -> Any:
    """Drive the cells through the executor, printing a line per change unless quiet."""
    from demtui.grid import Grid

    grid = Grid(root, cells, executor, axes=axes, on_change=None if quiet else _print_change, extra=extra)
    started = time.time()
    if not quiet:
        sys.stderr.write(f"grid: {len(cells)} runs in {root} on executor '{executor.name}'\n")
    grid.run(resume=resume)
    if not quiet:
        sys.stderr.write(f"grid: {grid.status} in {time.time() - started:.0f} s ({_counts(grid)})\n")
    return grid


def _counts(grid: Any) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(grid.counts().items()))


def _print_change(grid: Any, cell: Any) -> None:
    done = sum(c.status in ("finished", "failed", "cancelled") for c in grid.cells)
    line = f"[{done}/{len(grid.cells)}] {cell.label}: {cell.status}"
    if cell.status == "finished" and cell.summary:
        before, after = cell.summary.get("sr_before"), cell.summary.get("sr_after")
        if before is not None:
            line += f" (SR {before:.3f}" + (f" → {after:.3f})" if after is not None else ")")
    elif cell.message:
        line += f": {cell.message}"
    sys.stderr.write(line + "\n")


def print_grid(grid: Any, as_json: bool) -> None:
    from demtui.grid import table_rows

    entries = [c.manifest_entry(grid.root) for c in grid.cells]
    if as_json:
        from demtui.jsonsafe import dumps

        sys.stdout.write(dumps({"run_dir": str(grid.root), "status": grid.status,
                                "executor": grid.executor.name, "sweep": entries}) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    header, rows = table_rows(entries)
    keep = [i for i, col in enumerate(header) if any(r[i] not in ("—", "") for r in rows)]  # drop empty columns
    table = Table(title=f"Sweep — {grid.root}")
    for i in keep:
        table.add_column(header[i], justify="left" if header[i] == "note" else "right")
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    Console().print(table)


def wait_single(executor: Any, run_spec: Any, run_dir: Path, *, resume: bool) -> Any:
    """One run through a non-inline executor: submit, wait (Ctrl-C cancels it), return the handle."""
    handle = executor.submit(run_spec.to_toml(), run_dir, device=run_spec.run["device"], resume=resume,
                             label=run_dir.name)
    try:
        while handle.active:
            executor.poll()
            time.sleep(0.2)
    except KeyboardInterrupt:
        executor.shutdown(cancel=True)
    else:
        executor.shutdown(cancel=False)
    return handle
