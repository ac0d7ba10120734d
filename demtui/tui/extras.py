"""Views beside the main panes: the equivalent CLI command, report.md, UAP previews, a file picker.

All Textual-side and torch-free: previews are the PNGs the run already wrote (read with
Pillow and drawn with half-block characters, two pixels per cell), reports are Markdown.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Callable

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Label, Markdown, Static

NAMED = ("model", "dataset", "attack", "defense")
OPTIONS = {"targets": "--targets", "device": "--device", "seed": "--seed", "layer": "--layer"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def cli_command(spec: dict[str, Any], out: Path | str | None = None, defaults: dict[str, Any] | None = None,
                extra: list[str] | None = None) -> str:
    """`demtui run --headless …` that runs this spec: named components as options, every
    parameter that differs from ``defaults`` (the resolved defaults of the same components)
    as ``--set section.param=value``."""
    defaults = defaults or {}
    args = ["demtui", "run", "--headless"]
    for section in NAMED:
        name = spec.get(section, {}).get("name")
        if name:
            args += [f"--{section}", str(name)]
    run = spec.get("run", {})
    for key, flag in OPTIONS.items():
        value = run.get(key)
        if value not in (None, "", []) and value != defaults.get("run", {}).get(key):
            args += [flag, _text(value)]
    for section in ("run", "victim", *NAMED):
        for key, value in (spec.get(section) or {}).items():
            if key == "name" or (section == "run" and key in OPTIONS) or value is None:
                continue
            if (defaults.get(section) or {}).get(key, object()) == value:
                continue
            args += ["--set", f"{section}.{key}={_text(value)}"]
    args += list(extra or [])
    if out is not None:
        args += ["--out", str(out)]
    return " ".join(shlex.quote(a) for a in args)


def resolved_defaults(spec: dict[str, Any], registry: Any) -> dict[str, Any]:
    """The spec's components with nothing set: what `--set` flags are measured against."""
    from demtui.errors import DemtuiError
    from demtui.spec import resolve

    base: dict[str, Any] = {section: {"name": spec.get(section, {}).get("name")} for section in NAMED}
    base["run"] = {"targets": spec.get("run", {}).get("targets") or [0]}
    try:
        return resolve(base, registry).to_dict()
    except DemtuiError:
        return {}


# -- report.md -----------------------------------------------------------------------------
class ReportScreen(ModalScreen[None]):
    """A run's report.md, rendered (Escape closes)."""

    BINDINGS = [Binding("escape,q,m", "close", "Close")]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            text = f"# No report\n\n{self.path} cannot be read ({exc.strerror}); reports are written when a run finishes."
        with VerticalScroll(id="report-box"):
            yield Markdown(text)

    def action_close(self) -> None:
        self.dismiss(None)


# -- UAP previews --------------------------------------------------------------------------
def block_image(path: Path, width: int, height: int) -> Text:
    """A PNG drawn with '▀' (top pixel as foreground, bottom as background), fitted to width×height cells."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
        scale = min(width / rgb.width, 2 * height / rgb.height)
        size = (max(1, int(rgb.width * scale)), max(2, int(rgb.height * scale) // 2 * 2))
        rgb = rgb.resize(size, Image.Resampling.NEAREST)
        px = rgb.load()
        out = Text(no_wrap=True)
        for y in range(0, size[1], 2):
            for x in range(size[0]):
                top, bottom = px[x, y], px[x, y + 1] if y + 1 < size[1] else px[x, y]
                out.append("▀", Style(color=f"rgb{tuple(top)}", bgcolor=f"rgb{tuple(bottom)}"))
            out.append("\n")
        return out


def previews(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "artifacts").glob("*.png"))


class UapScreen(ModalScreen[None]):
    """The run's UAP previews, one at a time (←/→ or n/p for the next one)."""

    BINDINGS = [Binding("escape,q,u", "close", "Close"), Binding("right,n", "step(1)", "Next"),
                Binding("left,p", "step(-1)", "Previous")]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.paths = previews(run_dir)
        self.index = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="uap-box"):
            yield Label("", id="uap-title")
            yield Static("", id="uap-image")

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        title = self.query_one("#uap-title", Label)
        image = self.query_one("#uap-image", Static)
        if not self.paths:
            title.update("No UAP previews yet (the attack stage writes artifacts/*.png).")
            image.update("")
            return
        path = self.paths[self.index % len(self.paths)]
        title.update(f"{path.name}  ({self.index % len(self.paths) + 1}/{len(self.paths)}; ←/→ next · Esc close)")
        try:
            image.update(block_image(path, max(8, self.size.width - 6), max(4, self.size.height - 6)))
        except (OSError, ValueError) as exc:
            image.update(f"{path.name} cannot be drawn: {exc}")

    def action_step(self, step: int) -> None:
        self.index += step
        self._show()

    def action_close(self) -> None:
        self.dismiss(None)


# -- file picker ---------------------------------------------------------------------------
class PickerScreen(ModalScreen["str | None"]):
    """Browse for a file or folder; Enter on a file picks it, `.` picks the highlighted folder."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("full_stop", "pick_folder", "Pick folder")]

    def __init__(self, start: Path, title: str = "Pick a path") -> None:
        super().__init__()
        self.start, self.title_text = start, title

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Label(f"{self.title_text} — Enter picks a file · . picks the folder · Esc cancels", id="picker-title")
            yield DirectoryTree(str(self.start), id="picker-tree")

    def on_mount(self) -> None:
        self.query_one(DirectoryTree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path))

    def action_pick_folder(self) -> None:
        node = self.query_one(DirectoryTree).cursor_node
        if node is not None and node.data is not None:
            self.dismiss(str(node.data.path))

    def action_cancel(self) -> None:
        self.dismiss(None)


def pick_start(typed: str, fallback: Path) -> Path:
    """Where the picker opens: the typed folder (or the folder of a typed file), else ``fallback``."""
    path = Path(typed).expanduser() if typed else fallback
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path if path.is_dir() else Path.cwd()


Callback = Callable[[Any], Any]
