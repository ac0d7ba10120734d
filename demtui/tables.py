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
