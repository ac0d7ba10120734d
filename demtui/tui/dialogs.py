"""Modal screens: help, and the quit question when runs are still active (paths: demtui.tui.prompt)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Markdown

HELP = """\
# demtui — keys

Every screen lists its keys in the footer; the mouse works too.

**Anywhere** — `F2` Compose · `F3` Watch · `F4` History · `F1` or `?` this help ·
`Ctrl+T` light/dark theme · `Ctrl+P` command palette · `Ctrl+Q` quit (asks when runs are active)

**Compose** — `Tab`/`Shift+Tab` move between fields (each field's help shows under the form) ·
`Enter` in the registry tree uses that component · `Ctrl+R` launch the spec as a background run ·
`Ctrl+S` / `Ctrl+O` save / load a spec TOML · `Ctrl+N` back to the quickstart spec

**Watch** — `x` cancel the selected run (press again to kill it) · `r` resume it (finished
stages are skipped) · `o` open any run directory, also one started with `demtui run --headless` ·
`[` / `]` previous / next entropy layer · `t` next target (or all) · `l` next loss curve

**History** — `Enter` open the run in Watch · `Space` mark / unmark · `c` compare the marked runs
side by side · `e` export the marked (or all) runs as Markdown and CSV · `F5` rescan the folder

Runs are separate processes: quitting can leave them running, and `demtui` reopens them
from their run directories (History, or `o` in Watch).

The histograms are the paper's Fig. 2/3: entropy (Eq. 5) of one layer's activations for
clean inputs (█ first colour), UAP-perturbed inputs (█ second colour) and ▲ the UAP alone,
before and after the defense; shared bins per layer.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss(None)


class QuitScreen(ModalScreen[str]):
    """Runs are still going: leave them (queued ones saved for next time), cancel them, or stay."""

    BINDINGS = [Binding("escape", "choose('stay')", "Stay"), Binding("c", "choose('cancel')", "Cancel runs"),
                Binding("k", "choose('keep')", "Keep running")]

    def __init__(self, running: int, queued: int = 0) -> None:
        super().__init__()
        self.running, self.queued = running, queued

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            parts = [f"{self.running} run(s) running"] + ([f"{self.queued} queued"] if self.queued else [])
            yield Label(" and ".join(parts) + ".", classes="quit-text", id="quit-count")
            yield Label("k: running runs keep going (reopen them later: they appear in Watch on the next start)"
                        + ("; queued runs are saved and start again when demtui next opens." if self.queued else "."),
                        classes="quit-text")
            yield Label("c: cancel every run (finished stages are kept; r resumes them later).", classes="quit-text")
            with Horizontal(id="quit-buttons"):
                yield Button("k Keep", id="keep", variant="primary", compact=True)
                yield Button("c Cancel all", id="cancel", variant="error", compact=True)
                yield Button("Esc Stay", id="stay", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
