"""A grouped bar chart in PIL alone (no plotting library in the default install).

One group per table row; one bar per metric (ours, with its ± std as a whisker) and the
paper's value as a black tick across the bar's slot, so "SR before → after" reads at a glance.
"""

from __future__ import annotations

import io

from demtui.tables import Stat

COLOURS = [(215, 95, 80), (70, 130, 180), (110, 170, 90), (200, 160, 60)]
W, H, LEFT, BOTTOM, TOP = 960, 480, 70, 70, 50


def bar_plot(series: list[tuple[str, dict[str, tuple[Stat | None, float | None]]]], keys: tuple[str, ...],
             title: str) -> bytes:
    """PNG bytes; values are shares in [0, 1] (SR, AAcc); missing ones leave a gap."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    plot_w, plot_h = W - LEFT - 20, H - BOTTOM - TOP
    y_of = lambda v: TOP + plot_h * (1 - max(0.0, min(1.0, v)))  # noqa: E731
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(tick)
        draw.line([(LEFT, y), (W - 20, y)], fill=(225, 225, 225))
        draw.text((LEFT - 40, y - 6), f"{tick:.2f}", fill="black", font=font)
    draw.line([(LEFT, TOP), (LEFT, TOP + plot_h)], fill="black")
    draw.line([(LEFT, TOP + plot_h), (W - 20, TOP + plot_h)], fill="black")
    draw.text((LEFT, 12), title, fill="black", font=font)
    group_w = plot_w / max(1, len(series))
    bar_w = group_w * 0.8 / max(1, len(keys))
    for g, (label, values) in enumerate(series):
        x0 = LEFT + g * group_w + group_w * 0.1
        for k, key in enumerate(keys):
            ours, paper = values.get(key, (None, None))
            left, right = x0 + k * bar_w, x0 + (k + 1) * bar_w - 2
            if ours is not None:
                draw.rectangle([left, y_of(ours.mean), right, TOP + plot_h], fill=COLOURS[k % len(COLOURS)])
                if ours.n > 1 and ours.std > 0:
                    mid = (left + right) / 2
                    draw.line([(mid, y_of(ours.mean - ours.std)), (mid, y_of(ours.mean + ours.std))], fill="black")
            if paper is not None:
                y = y_of(paper)
                draw.line([(left - 2, y), (right + 2, y)], fill="black", width=3)
        draw.text((x0, TOP + plot_h + 8), label[:18], fill="black", font=font)
    for k, key in enumerate(keys):  # legend
        x = LEFT + 10 + k * 170
        draw.rectangle([x, H - 28, x + 14, H - 14], fill=COLOURS[k % len(COLOURS)])
        draw.text((x + 20, H - 28), f"{key} (ours)", fill="black", font=font)
    x = LEFT + 10 + len(keys) * 170
    draw.line([(x, H - 21), (x + 14, H - 21)], fill="black", width=3)
    draw.text((x + 20, H - 28), "paper", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
