"""An inline path prompt docked above the footer, with filesystem completion.

Not a modal screen on purpose: with a modal, a click or keys that follow Enter at once
were routed to the prompt while it was still closing, so they were lost (issue 15). The
bar lives in the main screen, so whatever the user clicks next gets the keys. Focus
returns to where it was only if the user has not moved it meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.suggester import Suggester
from textual.widget import Widget
from textual.widgets import Input, Label


def complete_path(value: str) -> str | None:
    """The longest unambiguous completion of a typed path ('runs/sa' → 'runs/sample-full/')."""
    if not value:
        return None
    expanded = os.path.expanduser(value)
    folder, stem = os.path.split(expanded)
    try:
        names = sorted(n for n in os.listdir(folder or ".")
                       if n.startswith(stem) and (stem.startswith(".") or not n.startswith(".")))
    except OSError:
        return None
    if not names:
        return None
    common = os.path.commonprefix(names)
    if len(names) == 1 and os.path.isdir(os.path.join(folder or ".", names[0])):
        common += os.sep
    if len(common) <= len(stem):
        return None
    return value + common[len(stem):]


class PathSuggester(Suggester):
    """Suggests the rest of a path as the user types (→ or Tab accepts)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value)


class PromptBar(Horizontal):
    """`ask(title, value, callback)`: Enter calls back with the path, Escape with None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False), Binding("tab", "complete", "Complete", show=False),
                Binding("ctrl+b", "browse", "Browse", show=False)]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._callback: Callable[[str | None], Any] | None = None
        self._return_to: Widget | None = None

    def compose(self) -> ComposeResult:
        yield Label("", id="prompt-title")
        yield Input(placeholder="a path", id="prompt-input", compact=True, select_on_focus=False,
                    suggester=PathSuggester())
        yield Label("Tab complete · ^B browse · Esc cancel", id="prompt-hint")

    def on_mount(self) -> None:
        self.display = False

    def ask(self, title: str, value: str, callback: Callable[[str | None], Any], placeholder: str = "a path") -> None:
        self._return_to = self.app.focused
        self._callback = callback
        self.query_one("#prompt-title", Label).update(title)
        field = self.query_one("#prompt-input", Input)
        field.placeholder = placeholder
        field.value = value
        self.display = True
        field.focus()
        field.cursor_position = len(value)  # the default stays; typing adds to it, never replaces it

    def _close(self, result: str | None) -> None:
        field = self.query_one("#prompt-input", Input)
        had_focus = self.app.focused is field
        self.display = False
        callback, self._callback = self._callback, None
        if had_focus and self._return_to is not None and self._return_to.is_attached:
            self._return_to.focus()
        if callback is not None:
            self.app.call_later(callback, result)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._close(event.value.strip() or None)

    def action_cancel(self) -> None:
        self._close(None)

    def action_browse(self) -> None:
        """The file picker, opened where the typed path points; its choice fills the field."""
        from demtui.tui.extras import PickerScreen, pick_start

        field = self.query_one("#prompt-input", Input)

        def chosen(path: str | None) -> None:
            if path:
                field.value = path
                field.cursor_position = len(path)
            field.focus()

        start = pick_start(field.value, Path(getattr(self.app, "runs_dir", ".")))
        self.app.push_screen(PickerScreen(start, str(self.query_one("#prompt-title", Label).content)), chosen)

    def action_complete(self) -> None:
        field = self.query_one("#prompt-input", Input)
        more = complete_path(field.value)
        if more:
            field.value = more
            field.cursor_position = len(more)
