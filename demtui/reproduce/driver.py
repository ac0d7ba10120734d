"""Run a table's preset as a grid and write its outputs (the body of `demtui reproduce`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from demtui.reproduce import PlannedCell, TableDef, load_table, plan, preset_of
from demtui.reproduce.render import PLAN_FILE, write_outputs
from demtui.store import atomic_write_text

#: What every tiny cell starts from: the quickstart, lighter where a table does not need it.
TINY_BASE: dict[str, Any] = {"run": {"secondary": False, "targets": [0, 3, 5, 8]}}
#: What every paper cell starts from (victim, data and per-model values come from zoo.toml).
PAPER_BASE: dict[str, Any] = {"run": {"secondary": False},
                              "attack": {"name": "df-uap", "iterations": 1000},
                              "defense": {"name": "democratic", "recipe": "paper"}}


def base_spec(preset: str) -> dict[str, Any]:
    from demtui.spec import merge, quickstart_dict

    quick = quickstart_dict()
    if preset == "paper":  # the paper's pipeline: none of the quickstart's CPU scaling
        quick = {"run": {k: v for k, v in quick["run"].items() if k in ("seed", "device", "mode")},
                 "attack": {"name": "df-uap"}, "defense": {"name": "democratic"}}
    return merge(quick, PAPER_BASE if preset == "paper" else TINY_BASE)


def planned(table_id: str, preset: str, *, seeds: list[int], data_root: str,
            overrides: dict[str, Any]) -> tuple[TableDef, list[PlannedCell]]:
    table = load_table(table_id)
    return table, plan(table, preset_of(table, preset), base_spec(preset), seeds=seeds, data_root=data_root,
                       overrides=overrides)


def grid_cells(cells: list[PlannedCell], registry: Any) -> list[Any]:
    """Resolve every cell (all are validated before any runs) into grid cells."""
    from demtui import spec as specmod
    from demtui.grid import Cell

    out = []
    for cell in cells:
        run_spec = specmod.resolve(cell.data, registry)
        out.append(Cell(label=cell.label, values={"row": cell.row, "victim": cell.victim, "run.seed": cell.seed},
                        spec_toml=run_spec.to_toml(), device=run_spec.run["device"]))
    return out


def write_plan(root: Path, table: TableDef, preset: str, cells: list[PlannedCell]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    doc = {"table": table.id, "preset": preset,
           "cells": [{"label": c.label, "row": c.row, "victim": c.victim, "seed": c.seed} for c in cells]}
    atomic_write_text(root / PLAN_FILE, json.dumps(doc, indent=2))


def finish(root: Path, table: TableDef, preset: str, cells: list[PlannedCell]) -> list[Path]:
    plan_cells = [{"label": c.label, "row": c.row, "victim": c.victim, "seed": c.seed} for c in cells]
    return write_outputs(table, preset, root, plan_cells)
