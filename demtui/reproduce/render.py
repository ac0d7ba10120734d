"""A reproduction's table: measured (mean ± std over victims and seeds) beside the paper.

Written as ``table.md``, ``table.csv``, ``table.tex`` and ``table.png`` (SR before/after per
row, the paper's values as markers). Everything is rebuilt from the cells' run directories
(``results.json``), so ``demtui report DIR`` can redo it at any time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from demtui.reproduce import TableDef
from demtui.store import atomic_write_bytes, atomic_write_text
from demtui.tables import Stat, Table, mean_std, to_csv, to_latex, to_markdown

PLAN_FILE = "reproduce.json"


def _mean_over_targets(results: dict[str, Any], stage: str, metric: str) -> float | None:
    targets = results.get("stages", {}).get(stage, {}).get("targets", {})
    vals = [(v.get("metrics", v)).get(metric) for v in targets.values()]
    vals = [float(v) for v in vals if isinstance(v, (int, float))]
    return sum(vals) / len(vals) if vals else None


def metric(results: dict[str, Any], key: str) -> float | None:
    """One table metric from a run's results.json (the summary plus a few derived ones)."""
    summary = results.get("summary") or {}
    if key == "minutes":
        seconds = summary.get("defense_seconds")
        return None if seconds is None else seconds / 60
    if key == "secondary_aacc":
        return _mean_over_targets(results, "secondary", "aacc")
    value = summary.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _results(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def measured(table: TableDef, root: Path, cells: list[dict[str, Any]]) -> dict[str, dict[str, Stat | None]]:
    """Row id → column key → Stat over the row's finished cells (victims × seeds)."""
    keys = [c.key for c in table.columns] + [k for k in table.plot if k not in {c.key for c in table.columns}]
    by_row: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        results = _results(root / cell["label"])
        if results.get("summary"):
            by_row.setdefault(cell["row"], []).append(results)
    return {row: {k: mean_std([metric(r, k) for r in runs]) for k in keys} for row, runs in by_row.items()}


def build_table(table: TableDef, preset: str, root: Path, cells: list[dict[str, Any]]) -> Table:
    """Columns: the row, then each metric as ours | paper; an average row where the paper has one."""
    rows_meta = table.presets[preset].rows
    ours = measured(table, root, cells)
    columns = [table.row_header] + [f"{c.label} {who}" for c in table.columns for who in ("(ours)", "(paper)")]
    rows: list[list[Any]] = []
    for row in rows_meta:
        label = row.id if row.label == row.id else f"{row.id} ({row.label})"
        got = ours.get(row.id, {})
        paper = table.paper.get(row.id, {})
        rows.append([label] + [v for c in table.columns for v in (got.get(c.key), paper.get(c.key))])
    if "Avg" in table.paper:
        avg: list[Any] = ["Avg"]
        for c in table.columns:
            means = [ours[r.id][c.key].mean for r in rows_meta if ours.get(r.id, {}).get(c.key) is not None]
            avg += [mean_std(means), table.paper["Avg"].get(c.key)]
        rows.append(avg)
    finished = sum(1 for c in cells if _results(root / c["label"]).get("summary"))
    notes = [f"Paper values: {table.source}.",
             f"Preset '{preset}': {finished} of {len(cells)} runs finished; ours = mean ± std over each row's "
             "victims and seeds (one value: no ±)."]
    if preset != "paper":
        notes.append("The tiny preset keeps the table's shape on the offline shapes dataset with small CNNs; "
                     "its numbers are not the paper's models' and are shown beside them for shape, not equality.")
    return Table(columns=columns, rows=rows, caption=f"{table.title} ({table.id}, preset {preset})", notes=notes)


def write_outputs(table: TableDef, preset: str, root: Path, cells: list[dict[str, Any]]) -> list[Path]:
    """table.md/.csv/.tex/.png in ``root``; returns their paths."""
    from demtui.reproduce.plot import bar_plot

    t = build_table(table, preset, root, cells)
    out = []
    for name, text in (("table.md", to_markdown(t)), ("table.csv", to_csv(t)), ("table.tex", to_latex(t))):
        atomic_write_text(root / name, text)
        out.append(root / name)
    ours = measured(table, root, cells)
    series = [(row.id, {k: (ours.get(row.id, {}).get(k), table.paper.get(row.id, {}).get(k)) for k in table.plot})
              for row in table.presets[preset].rows]
    atomic_write_bytes(root / "table.png", bar_plot(series, table.plot, title=f"{table.id} ({preset})"))
    out.append(root / "table.png")
    return out


def rebuild(root: Path) -> list[Path]:
    """Redo a reproduction's outputs from its folder (what `demtui report DIR` does)."""
    from demtui.reproduce import load_table

    plan = json.loads((root / PLAN_FILE).read_text(encoding="utf-8"))
    return write_outputs(load_table(plan["table"]), plan["preset"], root, plan["cells"])
