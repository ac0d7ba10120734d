"""Modal screens: help, and the quit question when runs are still active (paths: demtui.tui.prompt)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Markdown

HELP = """\
# demtui — keys

Every screen lists its main keys in the footer; the mouse works too.

**Anywhere** — `F2` Compose · `F3` Watch · `F4` History · `F1` or `?` this help · `z` zoom the pane
in view (again: restore) · `Ctrl+T` light/dark theme · `Ctrl+P` command palette · `Ctrl+Q` quit
(asks when runs are active; queued runs can be kept for the next start)

**Path prompts** (above the footer) — `Tab` completes the path · `Ctrl+B` browse with a file
picker · `Enter` accepts · `Esc` cancels

**Compose** — `Tab`/`Shift+Tab` move between fields (each field's help shows under the form) ·
`Enter` in the registry tree uses that component · `Ctrl+R` launch the spec as a background run,
or, with Sweep axes (`attack.eps=4/255,8/255; defense.name=democratic,none`), a grid on the chosen
executor · `Ctrl+S` / `Ctrl+O` save / load a spec TOML · `Ctrl+N` back to the quickstart spec ·
`Ctrl+Y` copy the equivalent `demtui run` command

**Watch** — `x` cancel the selected run (press again to kill it) · `r` resume it (finished
stages are skipped) · `o` open a run directory or grid folder, also one started with
`demtui run --headless` · `/` filter the run list · `h` `s` `p` `g` histograms, SR table, loss
plot, log · `[` / `]` previous / next entropy layer · `t` next target (or all) · `l` next loss
curve · `m` report.md · `u` UAP previews · `y` copy the run's CLI command

**History** — `Enter` open the run (or grid) · `Space` mark / unmark · `c` compare the marked
runs side by side · `e` export the marked (or all) runs as Markdown and CSV · `/` filter ·
`s` sort (date, SR after, status, name) · `m` report · `u` UAPs · `y` CLI command · `F5` rescan

**Grid** — `Enter` on a cell: that run in Watch · `x` cancel the grid (resume continues it) ·
`Esc` back

Runs are separate processes: quitting can leave them running, and `demtui` picks up the ones
still going on its next start (also those started with `demtui run --headless`).

The histograms are the paper's Fig. 2/3: entropy (Eq. 5) of one layer's activations for
clean inputs (█ first colour), UAP-perturbed inputs (█ second colour) and ▲ the UAP alone,
before and after the defense, on one shared x-range.
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
