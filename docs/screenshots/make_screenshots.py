"""Regenerate the SVG screenshots in this folder (Textual's own screenshot facility).

    uv run python docs/screenshots/make_screenshots.py

They show the synthetic sample runs of ``demtui.tui.sample`` (fixed numbers shaped like
the paper's, no torch needed), so they are reproducible on any machine.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from demtui.tui.app import make_app
from demtui.devices import Device
from demtui.tui.sample import write_sample_grid, write_sample_run

HERE = Path(__file__).resolve().parent
SIZE = (100, 30)
DEVICES = [Device("auto", "auto (GPU when available)"), Device("cpu", "CPU"), Device("cuda:0", "cuda:0 NVIDIA H100")]


async def shoot(name: str, steps, theme: str | None = None, size: tuple[int, int] = SIZE) -> None:
    app = make_app(runs_dir=Path("runs"), devices=list(DEVICES), theme=theme)
    async with app.run_test(size=size) as pilot:
        for _ in range(100):  # the registry and the form load after the first frame
            await pilot.pause(0.05)
            if "valid" in str(app.query_one("#spec-status").render()):
                break
        await pilot.pause(0.3)
        await steps(app, pilot)
        await pilot.pause(0.5)
        app.save_screenshot(f"{name}.svg", path=str(HERE))
    print("wrote", HERE / f"{name}.svg")


def watch(run: str, tab: str = "tab-entropy", keys: tuple[str, ...] = ()):
    async def steps(app, pilot) -> None:
        app.open_run(Path("runs") / run)
        await pilot.pause(0.5)
        app.query_one("#watch-tabs").active = tab
        await pilot.press(*keys)
    return steps


async def grid(app, pilot) -> None:
    app.open_run(Path("runs/grid-defenses"))
    await pilot.pause(0.5)


async def nothing(app, pilot) -> None:
    return None


async def history(app, pilot) -> None:
    await pilot.press("f4")
    await pilot.pause(0.5)


async def compare(app, pilot) -> None:
    await history(app, pilot)
    await pilot.press("down", "space", "space", "space", "c")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["TZ"] = "UTC"
        write_sample_run(Path("runs/quickstart-live"), stop_after="analyse")
        write_sample_run(Path("runs/quickstart"))
        write_sample_run(Path("runs/fgsm-smoothing"), strength=0.3, attack="fgsm-uap", defense="input-smoothing")
        write_sample_run(Path("runs/collapsed"), stop_after="attack", ending="failed")
        deep = ("right_square_bracket",) * 5
        await shoot("compose", nothing)
        await shoot("watch-entropy", watch("quickstart", keys=deep))
        await shoot("watch-live", watch("quickstart-live", keys=deep))
        await shoot("watch-results", watch("quickstart", "tab-results"))
        await shoot("watch-loss", watch("quickstart", "tab-loss"))
        await shoot("history", history)
        await shoot("compare", compare)
        await shoot("watch-light", watch("quickstart", keys=deep), theme="textual-light")
        write_sample_grid(Path("runs/grid-defenses"))
        await shoot("grid", grid)
        small = (80, 24)
        await shoot("compose-80x24", nothing, size=small)
        await shoot("watch-80x24", watch("quickstart", keys=deep), size=small)
        await shoot("history-80x24", history, size=small)


if __name__ == "__main__":
    asyncio.run(main())
