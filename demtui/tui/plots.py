"""Terminal plots: entropy histograms (the paper's Fig. 2/3) and a loss curve.

Each widget keeps its own data (no global plot state) and redraws only when that data
changes; colours come from component classes in app.tcss, so light and dark themes
both read well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"
Y_LABEL = 5


@dataclass(frozen=True)
class HistogramData:
    """What one histogram panel shows: clean and perturbed counts on shared bins, UAP means."""

    title: str
    lo: float
    hi: float
    clean: tuple[int, ...] | None
    perturbed: tuple[int, ...] | None
    clean_mean: float | None = None
    perturbed_mean: float | None = None
    uap_means: tuple[float, ...] = ()


def _fractions(counts: tuple[int, ...] | None) -> list[float] | None:
    if not counts:
        return None
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(counts)


def _merge(values: list[float] | None, factor: int) -> list[float] | None:
    if values is None or factor == 1:
        return values
    return [sum(values[i:i + factor]) for i in range(0, len(values), factor)]


def _cell(height8: int, level: int) -> str:
    return BLOCKS[max(0, min(8, height8 - level))]


class HistogramPlot(Widget):
    """Grouped bars per entropy bin: clean beside perturbed; ▲ marks each UAP's own entropy."""

    COMPONENT_CLASSES = {"histogram--clean", "histogram--perturbed", "histogram--uap", "histogram--axis",
                         "histogram--title"}

    def __init__(self, empty: str = "no histogram yet", **kwargs) -> None:
        super().__init__(**kwargs)
        self.data: HistogramData | None = None
        self.empty = empty

    def set_data(self, data: HistogramData | None) -> None:
        if data != self.data:
            self.data = data
            self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if self.data is None or (self.data.clean is None and self.data.perturbed is None):
            title = self.data.title if self.data else ""
            return Text(f"{title}\n{self.empty}", style=self.get_component_rich_style("histogram--axis"))
        return self._draw(self.data, max(12, width), max(6, height))

    def _draw(self, d: HistogramData, width: int, height: int) -> Text:
        s_clean = self.get_component_rich_style("histogram--clean")
        s_pert = self.get_component_rich_style("histogram--perturbed")
        s_uap = self.get_component_rich_style("histogram--uap")
        s_axis = self.get_component_rich_style("histogram--axis")
        s_title = self.get_component_rich_style("histogram--title")
        bins = len(d.clean or d.perturbed or ())
        plot_w = width - Y_LABEL
        factor = 1
        while math.ceil(bins / factor) * 2 > plot_w and factor < bins:
            factor += 1
        clean = _merge(_fractions(d.clean), factor)
        pert = _merge(_fractions(d.perturbed), factor)
        groups = math.ceil(bins / factor)
        per = max(2, plot_w // groups)
        bar_w = max(1, (per - (1 if per >= 3 else 0)) // 2)
        items = []
        if clean is not None:
            items.append((s_clean, "█", f"clean{_m(d.clean_mean)}"))
        if pert is not None:
            items.append((s_pert, "█", f"perturbed{_m(d.perturbed_mean)}"))
        if d.uap_means:
            items.append((s_uap, "▲", "UAP alone"))
        legend = _pack(items, width)
        plot_h = max(2, height - 3 - len(legend))
        top = max(max(clean or [0]), max(pert or [0])) or 1.0
        h8 = lambda f: round(f / top * plot_h * 8)  # noqa: E731
        out = Text(no_wrap=True, overflow="crop")
        out.append(d.title[:width] + "\n", style=s_title)
        for row in range(plot_h):
            level = (plot_h - 1 - row) * 8
            label = f"{top * 100:>3.0f}%┤" if row == 0 else ("  0%┤" if row == plot_h - 1 else "    │")
            out.append(label, style=s_axis)
            for g in range(groups):
                if clean is not None:
                    out.append(_cell(h8(clean[g]), level) * bar_w, style=s_clean)
                if pert is not None:
                    out.append(_cell(h8(pert[g]), level) * bar_w, style=s_pert)
                used = bar_w * ((clean is not None) + (pert is not None))
                out.append(" " * max(0, per - used))
            out.append("\n")
        marks = [" "] * (groups * per)
        for mean in d.uap_means:
            if d.hi > d.lo and mean == mean:
                b = min(bins - 1, max(0, int((mean - d.lo) / (d.hi - d.lo) * bins)))
                marks[min(len(marks) - 1, (b // factor) * per + per // 2)] = "▲"
        out.append(" " * Y_LABEL + "".join(marks)[:plot_w] + "\n", style=s_uap)
        out.append(" " * Y_LABEL + axis_line(d.lo, d.hi, groups * per, plot_w) + "\n", style=s_axis)
        for n, line in enumerate(legend):
            out.append("\n" if n else "")
            for style, mark, label in line:
                out.append(mark, style=style)
                out.append(label + " ", style=s_axis)
        return out


def _pack(items: list[tuple[Style, str, str]], width: int) -> list[list[tuple[Style, str, str]]]:
    """Legend entries packed into as few lines as fit the width (wrapped, never cut)."""
    lines: list[list[tuple[Style, str, str]]] = [[]]
    used = 0
    for item in items:
        size = len(item[2]) + 2
        if lines[-1] and used + size > width:
            lines.append([])
            used = 0
        lines[-1].append(item)
        used += size
    return lines


def _m(v: float | None) -> str:
    return "" if v is None else f" mean {v:.3f}"


def axis_line(lo: float, hi: float, span: int, width: int) -> str:
    """'8.4  entropy (nats)  10.2' fitted to ``span`` columns; the end labels are never cut."""
    a, b = f"{lo:.3g}", f"{hi:.3g}"
    room = max(0, min(span, width) - len(a) - len(b))
    for middle in (" entropy (nats) ", " nats ", " "):
        if len(middle) <= room:
            return a + middle.center(room) + b
    return (a + " " + b)[:width]


def rebin(counts: tuple[int, ...] | list[int] | None, lo: float, hi: float, x_lo: float, x_hi: float,
          bins: int) -> tuple[int, ...] | None:
    """Counts on [lo, hi] moved onto ``bins`` equal bins over [x_lo, x_hi] (by bin centre), so
    the before and after panels share one x-range."""
    if counts is None:
        return None
    if (lo, hi) == (x_lo, x_hi) and len(counts) == bins:
        return tuple(counts)
    out = [0] * bins
    n = len(counts)
    span = (x_hi - x_lo) or 1.0
    for i, c in enumerate(counts):
        centre = lo + (i + 0.5) * (hi - lo) / max(1, n)
        j = min(bins - 1, max(0, int((centre - x_lo) / span * bins)))
        out[j] += c
    return tuple(out)


# -- loss curve ------------------------------------------------------------------------------
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


def braille_lines(values: list[float], cols: int, rows: int) -> list[str]:
    """Draw a connected line through ``values`` on a cols×rows grid of braille cells."""
    px, py = cols * 2, rows * 4
    grid = [[0] * cols for _ in range(rows)]
    if not values or cols < 1 or rows < 1:
        return ["⠀" * cols for _ in range(rows)]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    n = len(values)
    ys = []
    for x in range(px):
        pos = x * (n - 1) / (px - 1) if px > 1 and n > 1 else 0.0
        i = min(int(pos), n - 1)
        frac = pos - i
        v = values[i] * (1 - frac) + values[min(i + 1, n - 1)] * frac  # linear between points
        ys.append(py - 1 - round((v - lo) / span * (py - 1)))
    for x, y in enumerate(ys):
        prev = ys[x - 1] if x else y
        for yy in range(min(prev, y), max(prev, y) + 1):
            grid[yy // 4][x // 2] |= _DOTS[yy % 4][x % 2]
    return ["".join(chr(0x2800 + b) for b in row) for row in grid]


class LinePlot(Widget):
    """A braille line chart of one series (the defense's training loss by default)."""

    COMPONENT_CLASSES = {"lineplot--line", "lineplot--axis", "lineplot--title"}

    def __init__(self, empty: str = "no values yet", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = ""
        self.values: tuple[float, ...] = ()
        self.empty = empty

    def set_data(self, title: str, values: list[float]) -> None:
        values_t = tuple(values)
        if (title, values_t) != (self.title, self.values):
            self.title, self.values = title, values_t
            self.refresh()

    def render(self) -> Text:
        s_line = self.get_component_rich_style("lineplot--line")
        s_axis = self.get_component_rich_style("lineplot--axis")
        s_title = self.get_component_rich_style("lineplot--title")
        width, height = max(12, self.size.width), max(4, self.size.height)
        out = Text(no_wrap=True, overflow="crop")
        out.append(self.title + "\n", style=s_title)
        if not self.values:
            out.append(self.empty, style=s_axis)
            return out
        vals = list(self.values)
        label_w = 9
        rows = height - 2
        lines = braille_lines(vals, width - label_w, rows)
        hi, lo = max(vals), min(vals)
        for r, line in enumerate(lines):
            label = f"{hi:>8.3g}┤" if r == 0 else (f"{lo:>8.3g}┤" if r == rows - 1 else " " * 8 + "│")
            out.append(label, style=s_axis)
            out.append(line + "\n", style=s_line)
        out.append(" " * label_w + f"{len(vals)} points · last {vals[-1]:.4g}", style=s_axis)
        return out
