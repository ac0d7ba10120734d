"""A format-neutral table and its Markdown, CSV and LaTeX (booktabs) writers.

Cells are str, int, float, None or :class:`Stat` (mean ± std over n runs, e.g. seeds),
so one table serves the console, papers (LaTeX), spreadsheets (CSV: numbers stay numbers)
and READMEs (Markdown).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Stat:
    """Mean ± std over ``n`` values (std is 0 for one value)."""

    mean: float
    std: float
    n: int


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def mean_std(values: list[float | None]) -> Stat | None:
    """Stat of the finite values, or None when there are none."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return None
    return Stat(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0, len(xs))


def format_stat(stat: Stat, digits: int = 3) -> str:
    if stat.n <= 1:
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"


def _text(cell: Any, digits: int = 3) -> str:
    if cell is None or (isinstance(cell, float) and not math.isfinite(cell)):
        return "—"
    if isinstance(cell, Stat):
        return format_stat(cell, digits)
    if isinstance(cell, float):
        return f"{cell:.{digits}f}"
    return str(cell)


def to_markdown(t: Table) -> str:
    lines = [f"**{t.caption}**", ""] if t.caption else []
    lines += ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(_text(c).replace("|", "/") for c in row) + " |" for row in t.rows]
    lines += [""] + [f"- {n}" for n in t.notes] if t.notes else []
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    """Numbers as numbers (full precision), empty for missing; a Stat gives mean and std columns."""
    stat_cols = {i for row in t.rows for i, c in enumerate(row) if isinstance(c, Stat)}
    header = []
    for i, name in enumerate(t.columns):
        header += [name, f"{name} std"] if i in stat_cols else [name]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in t.rows:
        out: list[Any] = []
        for i, c in enumerate(row):
            if i in stat_cols:
                out += [c.mean, c.std] if isinstance(c, Stat) else ["" if c is None else c, ""]
            else:
                out.append("" if c is None or (isinstance(c, float) and not math.isfinite(c)) else c)
        writer.writerow(out)
    return buf.getvalue()


_TEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _tex_escape(text: str) -> str:
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("—", "--").replace("→", r"$\to$")


def to_latex(t: Table) -> str:
    align = "l" + "r" * (len(t.columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering"]
    if t.caption:
        lines.append(r"\caption{" + _tex_escape(t.caption) + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule",
              " & ".join(_tex_escape(c) for c in t.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex_escape(_text(c)) for c in row) + r" \\" for row in t.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in t.notes:
        lines.append(r"\par\footnotesize " + _tex_escape(note))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# -- exports: `demtui report DIR --format md|csv|tex` ------------------------------------------

FORMATS = ("md", "csv", "tex")
#: (column, summary key, per-target stage, per-target metric); metric "sr" means SR, or the
#: fooling rate in untargeted mode.
TARGET_COLUMNS = (("SR before", "sr_before", "attack", "sr"), ("SR after", "sr_after", "evaluate", "sr"),
                  ("AAcc before", "aacc_before", "attack", "aacc"), ("AAcc after", "aacc_after", "evaluate", "aacc"),
                  ("SR secondary", "secondary_sr", "secondary", "sr"))
RUN_COLUMNS = (("CAcc before", "cacc_before"), ("CAcc after", "cacc_after"), ("ΔCAcc", "delta_cacc"),
               ("Noise SR", "noise_sr"), ("Entropy gap before", "entropy_gap_before"),
               ("Entropy gap after", "entropy_gap_after"))
ALL = "all"


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of FORMATS, else one sentence (SpecError) naming the closest."""
    if fmt not in FORMATS:
        from demtui.errors import SpecError, did_you_mean

        raise SpecError(f"Unknown format '{fmt}'." + did_you_mean(fmt, FORMATS) + f" Use one of {', '.join(FORMATS)}.")
    return fmt


def render(table: Table, fmt: str) -> str:
    """One table in ``md``, ``csv`` or ``tex`` (LaTeX booktabs)."""
    writers = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
    return writers[check_format(fmt)](table)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def target_values(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Target → summary key → value, plus ``all`` from the run's summary (the means over targets)."""
    stages = results.get("stages", {})
    summary = results.get("summary") or {}
    untargeted = summary.get("mode") == "untargeted"
    out: dict[str, dict[str, float | None]] = {}
    for target, entry in (stages.get("attack", {}).get("targets") or {}).items():
        row: dict[str, float | None] = {}
        for _, key, stage, metric in TARGET_COLUMNS:
            found = (stages.get(stage, {}).get("targets") or {}).get(target) or {}
            found = found.get("metrics", found)
            row[key] = _num(found.get("fooling_rate" if metric == "sr" and untargeted else metric))
        out[str(target)] = row
    out[ALL] = {key: _num(summary.get(key)) for key in
                [k for _, k, _, _ in TARGET_COLUMNS] + [k for _, k in RUN_COLUMNS]}
    return out


def _label(target: str, classes: list[str] | None) -> str:
    if target.isdigit() and classes and int(target) < len(classes):
        return f"{target} ({classes[int(target)]})"
    return target


def run_table(spec: dict[str, Any], results: dict[str, Any]) -> Table:
    """One row per target and an ``all`` row (the run's summary: means over targets, CAcc, ΔCAcc …)."""
    classes = results.get("stages", {}).get("baseline", {}).get("classes")
    values = target_values(results)
    sr = "SR" if (results.get("summary") or {}).get("mode", "targeted") == "targeted" else "FR"
    columns = ["Target"] + [c.replace("SR", sr) for c, *_ in TARGET_COLUMNS] + [c.replace("SR", sr) for c, _ in RUN_COLUMNS]
    rows = [[_label(t, classes)] + [v.get(k) for _, k, *_ in TARGET_COLUMNS] + [v.get(k) for _, k in RUN_COLUMNS]
            for t, v in values.items()]
    defense = (spec.get("defense") or {}).get("name", "none")
    caption = (f"{spec.get('model', {}).get('name', '?')} on {spec.get('dataset', {}).get('name', '?')}: attack "
               f"{spec.get('attack', {}).get('name', '?')}, defense {defense}, seed {spec.get('run', {}).get('seed', 0)}")
    return Table(columns=columns, rows=rows, caption=caption,
                 notes=["Before: the original model; after: the defended one against the same UAPs; secondary: a "
                        "fresh attack on the defended model. CAcc and the entropy gaps belong to the whole run."])


def grid_table(entries: list[dict[str, Any]], results: dict[str, dict[str, Any]], targets: bool = True) -> Table:
    """A grid's cells grouped over ``run.seed`` (mean ± std over the seeds that finished), per target and ``all``.

    ``entries`` are sweep.json's cells (``label``, ``values``, ``status``); ``results`` maps a
    label to that run's results.json (missing or unfinished runs are left out of the means).
    """
    axes = [a for a in (list(entries[0]["values"]) if entries else []) if a != "run.seed"]
    seeded = any("run.seed" in e.get("values", {}) for e in entries)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for entry in entries:
        key = tuple(str(entry["values"].get(a, "")) for a in axes)
        groups.setdefault(key, []).append(entry)
    keys = [k for _, k, *_ in TARGET_COLUMNS] + [k for _, k in RUN_COLUMNS]
    columns = [*axes, "Target", "Runs"] + [c for c, *_ in TARGET_COLUMNS] + [c for c, _ in RUN_COLUMNS]
    rows: list[list[Any]] = []
    for key, members in groups.items():
        done = [results[e["label"]] for e in members if (results.get(e["label"]) or {}).get("summary")]
        per_run = [target_values(r) for r in done]
        names = [ALL] + (sorted({t for v in per_run for t in v if t != ALL}, key=_target_order) if targets else [])
        for target in names:
            stats = [mean_std([v.get(target, {}).get(k) for v in per_run]) for k in keys]
            rows.append([*key, target, f"{len(done)}/{len(members)}", *stats])
    notes = [f"{len(entries)} runs; cells are mean ± std over seeds (run.seed)" if seeded
             else f"{len(entries)} runs, one seed each",
             "Runs: finished of planned; unfinished runs are left out of the means."]
    return Table(columns=columns, rows=rows, caption="demtui grid", notes=notes)


def _target_order(name: str) -> tuple[int, Any]:
    return (0, int(name)) if name.isdigit() else (1, name)


def export_run(run_dir: Any, fmt: str) -> str:
    """A run directory's per-target table in ``fmt`` (from spec.toml and results.json only)."""
    import json
    import tomllib
    from pathlib import Path

    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    spec_path = run_dir / "spec.toml"
    spec = tomllib.loads(spec_path.read_text(encoding="utf-8")) if spec_path.exists() else {}
    return render(run_table(spec, results), fmt)


def export_grid(root: Any, fmt: str) -> str:
    """A grid folder's table (sweep.json + each cell's results.json) in ``fmt``."""
    import json
    from pathlib import Path

    root = Path(root)
    manifest = json.loads((root / "sweep.json").read_text(encoding="utf-8"))
    entries = [e for e in manifest.get("sweep", []) if isinstance(e, dict) and "label" in e]
    results = {}
    for entry in entries:
        try:
            results[entry["label"]] = json.loads((root / entry["label"] / "results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    table = grid_table(entries, results)
    table.caption = f"demtui grid {root.name}"
    return render(table, fmt)
