"""`demtui reproduce`: the paper's tables as grids, with the paper's numbers beside ours.

Each table is data (``tables/tableN.toml``): its columns, the paper's values row by row
(with the table they come from) and two presets. ``paper`` uses the paper's victims,
datasets and hyperparameters (``zoo.toml``; real loading code, so it runs wherever the
data and weights can be fetched); ``tiny`` keeps the table's shape on the offline
``shapes`` dataset with small CNNs. A preset lists rows, each standing beside one paper
row; a row runs on one or more victims (the paper averages Tables 3–5 over models) and
seeds, and its cell is the mean (± std) over them. The grid runs through any executor,
like ``demtui run --sweep``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from demtui.errors import SpecError, did_you_mean

DEFAULT_DATA_ROOT = "~/data"


@dataclass(frozen=True)
class Column:
    key: str  # a metric name (see render.METRICS)
    label: str


@dataclass(frozen=True)
class Row:
    id: str  # the paper row this stands beside
    label: str
    victims: tuple[str, ...]
    overlay: dict[str, Any]  # dotted spec keys → values


@dataclass(frozen=True)
class Preset:
    name: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class TableDef:
    id: str
    title: str
    source: str
    row_header: str
    columns: tuple[Column, ...]
    paper: dict[str, dict[str, float]]
    presets: dict[str, Preset]
    plot: tuple[str, ...] = ("sr_before", "sr_after")


@dataclass
class PlannedCell:
    """One run of a reproduction: which row, victim and seed, and its spec dict."""

    label: str
    row: str
    victim: str
    seed: int
    data: dict[str, Any] = field(default_factory=dict)


def _read(name: str) -> dict[str, Any]:
    return tomllib.loads((resources.files("demtui.reproduce") / name).read_text(encoding="utf-8"))


def zoo() -> dict[str, dict[str, Any]]:
    """Victims by id (paper NN_1…NN_7, tiny T_1…): spec overlays per section."""
    data = _read("zoo.toml")
    return {**data.get("paper", {}), **data.get("tiny", {})}


def table_ids() -> list[str]:
    files = resources.files("demtui.reproduce") / "tables"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def load_table(table_id: str) -> TableDef:
    ids = table_ids()
    if table_id not in ids:
        raise SpecError(f"No reproducible table is called '{table_id}'." + did_you_mean(table_id, ids)
                        + " Run 'demtui reproduce --list' to see them.")
    raw = _read(f"tables/{table_id}.toml")
    default_victims = {name: tuple(p.get("victims", ())) for name, p in raw["preset"].items()}
    presets = {}
    for name, p in raw["preset"].items():
        rows = tuple(Row(id=r["id"], label=r.get("label", r["id"]),
                         victims=tuple(r.get("victims", default_victims[name])),
                         overlay={**p.get("set", {}), **r.get("set", {})}) for r in p["rows"])
        presets[name] = Preset(name, rows)
    return TableDef(id=raw["id"], title=raw["title"], source=raw["source"], row_header=raw["row_header"],
                    columns=tuple(Column(c["key"], c["label"]) for c in raw["columns"]),
                    paper=raw["paper"], presets=presets, plot=tuple(raw.get("plot", ("sr_before", "sr_after"))))


def preset_of(table: TableDef, name: str) -> Preset:
    if name not in table.presets:
        raise SpecError(f"Table '{table.id}' has no preset '{name}'." + did_you_mean(name, table.presets)
                        + f" Presets: {', '.join(table.presets)}.")
    return table.presets[name]


def dotted(overlay: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"attack.eps": "8/255"}`` → ``{"attack": {"eps": "8/255"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in overlay.items():
        section, dot, param = key.partition(".")
        if not dot:
            raise SpecError(f"Override '{key}' must look like section.param, e.g. attack.eps.")
        out.setdefault(section, {})[param] = value
    return out


def _fill(value: Any, data_root: str) -> Any:
    return value.replace("{data_root}", data_root) if isinstance(value, str) else value


def victim_overlay(victim: dict[str, Any], defense: str, data_root: str) -> dict[str, Any]:
    """A zoo entry as a spec overlay; its ``dt`` part only for Democratic Training."""
    over: dict[str, Any] = {}
    for section in ("model", "dataset", "victim", "run"):
        if section in victim:
            over[section] = {k: _fill(v, data_root) for k, v in victim[section].items()}
    if defense == "democratic" and "dt" in victim:
        over["defense"] = dict(victim["dt"])
    return over


def _label(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=,_-]", "_", "-".join(p for p in parts if p))


def plan(table: TableDef, preset: Preset, base: dict[str, Any], *, seeds: list[int], data_root: str,
         overrides: dict[str, Any]) -> list[PlannedCell]:
    """Every (row, victim, seed) as a full spec dict: base ← row ← victim ← seed ← --set overrides."""
    from demtui.spec import merge

    victims = zoo()
    cells = []
    for row in preset.rows:
        row_over = dotted(row.overlay)
        for victim_id in row.victims or ("",):
            if victim_id and victim_id not in victims:
                raise SpecError(f"Table '{table.id}' names victim '{victim_id}', which zoo.toml lacks.")
            data = merge(base, row_over)
            if victim_id:
                defense = data.get("defense", {}).get("name", "none")
                data = merge(data, victim_overlay(victims[victim_id], defense, data_root))
            for seed in seeds:
                seeded = merge(data, {"run": {"seed": seed}})
                seeded = merge(seeded, overrides)
                multi_victim = len(row.victims) > 1 or (victim_id and victim_id != row.id)
                label = _label(row.id, victim_id if multi_victim else "", f"s{seed}" if len(seeds) > 1 else "")
                cells.append(PlannedCell(label=label, row=row.id, victim=victim_id, seed=seed, data=seeded))
    return cells
