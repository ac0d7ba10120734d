"""The demtui Textual app: Compose, Watch and History in one window.

Runs never execute here: the executor starts each as its own process, and the app
follows every run by tailing its events.jsonl; one follower thread serves all runs
(demtui.tui.follow) and hands parsed batches to the UI thread. The UI thread folds them into a RunView and redraws at most
10×/s (updates that arrive faster are coalesced). Nothing here imports torch.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import get_current_worker

from demtui.errors import DemtuiError
from demtui.tui.compose_pane import ComposePane
from demtui.tui.follow import Follower
from demtui.devices import Device, detect_devices
from demtui.executors.base import ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, RunHandle
from demtui.executors.local import LocalProcessExecutor, device_key
from demtui.tui.history_pane import HistoryPane
from demtui.tui.prompt import PromptBar
from demtui.tui.runinfo import is_run_dir
from demtui.tui.runview import RunView
from demtui.tui.watch_pane import WatchPane

POLL_SECONDS = 0.2


class EventsRead(Message):
    """A batch of parsed events from one run's events.jsonl (posted by its follower thread)."""

    def __init__(self, key: str, events: list[dict[str, Any]], bad_lines: int, classes: list[str] | None) -> None:
        super().__init__()
        self.key, self.events, self.bad_lines, self.classes = key, events, bad_lines, classes


def load_registry() -> tuple[Any, str]:
    """The shared registry; a broken user registry.toml falls back to the built-in one."""
    from demtui.registry import Registry, get_registry

    try:
        return get_registry(), ""
    except DemtuiError as exc:
        from demtui.config import RegistryConfig, builtin_registry_path, read_toml

        try:
            builtin = builtin_registry_path()
            config = RegistryConfig(base_dir=builtin.parent)
            config.merge(read_toml(builtin), builtin)
            return Registry(config).load(), f"{exc} The built-in registry is used instead."
        except DemtuiError as again:
            return None, str(again)


class DemtuiApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "demtui"
    BINDINGS = [
        Binding("f2", "show_tab('compose')", "Compose", show=False),
        Binding("f3", "show_tab('watch')", "Watch", show=False),
        Binding("f4", "show_tab('history')", "History", show=False),
        Binding("1", "show_tab('compose')", show=False),
        Binding("2", "show_tab('watch')", show=False),
        Binding("3", "show_tab('history')", show=False),
        Binding("f1,question_mark", "help", "Help", key_display="F1"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("z", "zoom", "Zoom", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, runs_dir: Path | str | None = None, *, registry: Any = None, devices: list[Device] | None = None,
                 executor: Any = None, open_paths: list[Path] | None = None, theme: str | None = None) -> None:
        super().__init__()
        self._started = time.perf_counter()
        self.ready_after: float | None = None
        self.runs_dir = Path(runs_dir or os.environ.get("DEMTUI_RUNS") or "runs")
        # The registry (plugin imports) loads after the first frame unless one is given.
        self.registry, self.registry_error = registry, ""
        self._load_registry = registry is None
        self._detect = devices is None
        base = [Device("auto", "auto (GPU when available)"), Device("cpu", "CPU")]
        given = list(devices or [])
        self.devices = [d for d in base if d.value not in {g.value for g in given}] + given
        self.executor = executor or LocalProcessExecutor()
        self.views: dict[str, RunView] = {}
        self.handles: dict[str, RunHandle] = {}
        self.foreign_cancels: set[tuple[str, int | None]] = set()  # (run, pid) launched elsewhere, sent SIGTERM
        self.dirty: set[str] = set()
        self.follower = Follower()
        self.grids: dict[str, Any] = {}
        self.pending_select: str | None = None  # grid folder → its driver process (launched here)
        self._resume_anyway: set[str] = set()
        self._open_paths = list(open_paths or [])
        if theme:
            self.theme = theme

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Messages carry user text (paths, '[section]' names): always shown literally, never as markup
        (widgets' notify passes markup=True by default, so the flag is ignored on purpose)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def compose(self) -> ComposeResult:
        with TabbedContent(id="main-tabs", initial="compose"):
            with TabPane("Compose F2", id="compose"):
                yield ComposePane(self.registry, self.registry_error, self.devices, id="compose-pane",
                                  loading=self._load_registry)
            # Watch and History are hidden at first: mounted once Compose is usable (_mount_panes)
            yield TabPane("Watch F3", id="watch")
            yield TabPane("History F4", id="history")
        yield PromptBar(id="prompt-bar")
        yield Footer(compact=True, show_command_palette=False)

    def on_ready(self) -> None:
        self.ready_after = time.perf_counter() - self._started  # first frame on screen
        self.registry_at_first_frame = "demtui.registry" in __import__("sys").modules
        self.call_after_refresh(self._after_first_frame)

    async def _after_first_frame(self) -> None:
        """Import the plugins' metadata and fill Compose first, then build Watch and History."""
        if self._load_registry:
            self.registry, self.registry_error = load_registry()
            await self.query_one(ComposePane).set_registry(self.registry, self.registry_error)
        await self.query_one("#watch", TabPane).mount(WatchPane(id="watch-pane"))
        await self.query_one("#history", TabPane).mount(HistoryPane(self.runs_dir, id="history-pane"))

    def on_mount(self) -> None:
        self.run_worker(self._follow_loop, thread=True, group="follow", name="follower", exit_on_error=False)
        self.set_interval(0.5, self.poll_executor)
        self.set_interval(0.1, self.refresh_watch)
        self.set_interval(1.0, self.check_alive)
        if self._detect:
            self.detect_devices()
        for path in self._open_paths:
            self.open_run(path)
        self.restore_queue()
        self.adopt_live_runs()  # History scans when it mounts (just after the first frame)

    @work(thread=True, exit_on_error=False)
    def detect_devices(self) -> None:
        found = detect_devices()
        self.call_from_thread(self._set_devices, found)

    def _set_devices(self, found: list[Device]) -> None:
        from textual.widgets import Select

        pane = self.query_one(ComposePane)
        known = {d.value for d in found}
        pane.devices[:] = found + [d for d in pane.devices if d.value not in known]
        select = pane.query_one("#run-device", Select)
        value = select.value
        select.set_options([(d.label, d.value) for d in pane.devices])
        select.value = value
        self.executor.gpus = sum(d.value.startswith("cuda") for d in found)

    # -- following runs ------------------------------------------------------------------
    def follow(self, run_dir: Path) -> str:
        """Start tailing a run directory (once); returns its key."""
        key = str(run_dir.resolve())
        if key not in self.views:
            self.views[key] = RunView(run_dir.name)
            self.follower.add(key, run_dir)
            self.dirty.add(key)
        return key

    def _follow_loop(self) -> None:
        """The one follower thread: parse new lines of every run in bounded batches and post them."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            batches, more = self.follower.read_round()
            for b in batches:
                self.post_message(EventsRead(b.key, b.events, b.bad_lines, b.classes))
            if not more:
                self.follower.wake.wait(POLL_SECONDS)
                self.follower.wake.clear()

    def on_events_read(self, message: EventsRead) -> None:
        view = self.views.get(message.key)
        if view is None:
            return
        view.apply(message.events, message.bad_lines)
        if message.classes:
            view.classes = message.classes
            view.version += 1
        self.dirty.add(message.key)

    def status_of(self, key: str) -> tuple[str, str]:
        """(status, note) from the run's events and, when launched here, its process."""
        view, h = self.views[key], self.handles.get(key)
        if h is None:
            return view.status, ""
        if h.status == QUEUED:
            return "queued", f"queued: waiting for {device_key(h.device, self.executor.gpus)} to be free"
        if h.status == RUNNING:  # a resumed run shows its earlier ending until new events arrive
            note = "cancelling… (x again kills it)" if h.cancel_requested else ""
            return ("finished" if view.status == "finished" else "running"), note
        if h.status in (FAILED, CANCELLED) and view.status not in ("finished", "failed", "cancelled"):
            return h.status, h.message
        return view.status, ""

    def refresh_watch(self) -> None:
        """Timer (10×/s) and key actions: redraw what changed, once per tick at most."""
        try:
            self._redraw()
        except NoMatches:  # the app is shutting down and its widgets are gone
            pass

    def _redraw(self) -> None:
        watch = self.query_one(WatchPane)
        if self.dirty:
            watch.set_runs([(key, view.name, self.status_of(key)[0]) for key, view in self.views.items()])
        if watch.key in self.views:
            h = self.handles.get(watch.key)
            status, note = self.status_of(watch.key)
            live = h is not None and h.status == RUNNING
            with self.batch_update():
                watch.show(self.views[watch.key], status, note, live, time.time() if live else None)
        self.dirty.clear()

    def select_run(self, key: str) -> None:
        self.dirty.add(key)
        try:
            self.query_one(WatchPane).select(key)
        except NoMatches:  # Watch mounts just after the first frame; it selects this run then
            self.pending_select = key
            return
        self.refresh_watch()

    # -- launching -----------------------------------------------------------------------
    def launch_spec(self, spec: Any, name: str) -> RunHandle | None:
        if Path(name).name != name or name in (".", ".."):
            self.notify(f"Run name {name!r} must be a plain folder name (no '/').", title="Launch", severity="error")
            return None
        run_dir = self.runs_dir / name
        if run_dir.exists() and any(run_dir.iterdir()):
            self.notify(f"{run_dir} already exists; choose another name.", title="Launch", severity="error")
            return None
        try:
            handle = self.executor.submit(spec.to_toml(), run_dir, device=spec.run["device"])
        except (OSError, RuntimeError) as exc:
            self.notify(str(exc), title="Launch", severity="error")
            return None
        key = self.follow(run_dir)
        self.handles[key] = handle
        self.notify(f"{name}: {handle.status} on {spec.run['device']}", title="Launched")
        self.action_show_tab("watch")
        self.select_run(key)
        return handle

    def check_alive(self) -> None:
        """Runs not launched here whose events stopped without a final event: is their process gone?"""
        from demtui.tui.foreign import process_gone

        for key, view in self.views.items():
            h = self.handles.get(key)
            if view.status != "running" or h is not None:  # launched here: the executor reports its end
                continue
            if self.follower.idle_seconds(key, POLL_SECONDS) < 1.0:
                continue  # still reading its file: the final event may be in the next batch
            if process_gone(view.pid, view.host):
                view.mark_process_exit("died", f"its process {view.pid} is gone without a final event (killed or "
                                               "crashed); finished stages are kept, r resumes it")
                self.dirty.add(key)

    def launch_sweep(self, spec: Any, name: str, sweeps: list[str], executor: str) -> Any:
        """A grid: its driver (`demtui run --sweep`) runs in its own process; the grid view follows it."""
        from demtui.tui.checks import check_run_name
        from demtui.tui.grid_view import GridScreen, start_sweep

        problem = check_run_name(name, self.runs_dir)
        if problem:
            self.notify(problem, title="Launch", severity="error")
            return None
        root = self.runs_dir / name
        try:
            proc = start_sweep(root, spec.to_toml(), sweeps, executor)
        except OSError as exc:
            self.notify(f"Cannot start the grid in {root}: {exc.strerror}", title="Launch", severity="error")
            return None
        self.grids[str(root.resolve())] = proc
        self.notify(f"{name}: grid on executor '{executor}' ({'; '.join(sweeps)})", title="Launched")
        self.push_screen(GridScreen(root))
        return proc

    def poll_executor(self) -> None:
        for h in self.executor.poll():
            key = str(h.run_dir.resolve())
            self.dirty.add(key)
            if h.status in (FAILED, CANCELLED):
                self.set_timer(0.6, partial(self._mark_exit, key, h))
            if h.status not in ACTIVE:
                severity = {"failed": "error", "cancelled": "warning"}.get(h.status, "information")
                self.notify(f"{h.run_dir.name}: {h.message or h.status}", title=f"Run {h.status}", severity=severity)
                for history in self.query(HistoryPane):
                    history.rescan()

    def _mark_exit(self, key: str, h: RunHandle) -> None:
        view = self.views.get(key)
        if view is not None and not h.active:
            view.mark_process_exit(h.status, h.message)
            self.dirty.add(key)

    def cancel_run(self, key: str) -> None:
        h = self.handles.get(key)
        if h is None or not h.active:
            view = self.views.get(key)
            if view is not None and view.status == "running":
                self._cancel_foreign(key, view)
                return
            self.notify(f"Cannot cancel {Path(key).name}: it is not running.", title="Cancel", severity="warning")
            return
        self.notify(f"{'Killing' if h.cancel_requested else 'Cancelling'} {h.run_dir.name}…", title="Cancel")
        h.cancel()
        self.poll_executor()
        self.dirty.add(key)

    def _cancel_foreign(self, key: str, view: RunView) -> None:
        """A run launched elsewhere: SIGTERM its process (named in run_started); again → SIGKILL."""
        from demtui.tui.foreign import stop_foreign_run

        again = (key, view.pid) in self.foreign_cancels
        problem = stop_foreign_run(view.pid, view.host, kill=again)
        if problem:
            self.notify(f"Cannot cancel {Path(key).name}: {problem}.", title="Cancel", severity="warning")
            return
        self.foreign_cancels.add((key, view.pid))
        self.notify(f"{'Killing' if again else 'Cancelling'} {Path(key).name} (process {view.pid})…", title="Cancel")

    def resume_run(self, key: str) -> None:
        h, view = self.handles.get(key), self.views[key]
        path = Path(key)
        if h is not None and h.active:
            self.notify(f"{path.name} is already {h.status}.", title="Resume", severity="warning")
            return
        if view.status == "finished":
            self.notify(f"{path.name} finished; nothing to resume.", title="Resume")
            return
        from demtui.lock import holder_if_locked

        holder = holder_if_locked(path)  # the run's own lock says whether anyone still writes it
        if holder is not None:
            self.notify(f"{path.name} is being written by {holder.describe()}; wait for it to finish or stop it "
                        "before resuming.", title="Resume", severity="warning")
            return
        if view.status == "running" and h is None and key not in self._resume_anyway and not (path / "run.lock").exists():
            self._resume_anyway.add(key)
            self.notify(f"{path.name} has no final event: it may still be running elsewhere. If its process is "
                        "gone, press r again to resume it.", title="Resume", severity="warning")
            return
        resume = (path / "spec.toml").exists()
        if not resume and not (path / "submitted.toml").exists():
            self.notify(f"{path.name} has no spec.toml to resume from.", title="Resume", severity="error")
            return
        wanted = str(view.spec.get("run", {}).get("device", "auto")) if view.spec else "auto"
        device = wanted if wanted in {d.value for d in self.devices} else "auto"
        try:
            self.handles[key] = self.executor.submit(None, path, device=device, resume=resume)
        except (OSError, RuntimeError) as exc:
            self.notify(str(exc), title="Resume", severity="error")
            return
        self.notify(f"Resuming {path.name} on {device}", title="Resume")
        self.dirty.add(key)

    def open_run(self, path: Path) -> str | None:
        path = Path(path).expanduser()
        from demtui.tui.grid_view import GridScreen, is_grid_dir

        if is_grid_dir(path):
            self.push_screen(GridScreen(path))
            return str(path.resolve())
        if not is_run_dir(path):
            self.notify(f"{path} is not a demtui run directory (no events.jsonl, results.json or spec.toml).",
                        title="Open", severity="error")
            return None
        key = self.follow(path)
        self.action_show_tab("watch")
        self.select_run(key)
        return key

    # -- app actions ---------------------------------------------------------------------
    def action_show_tab(self, tab: str) -> None:
        self.query_one("#main-tabs", TabbedContent).active = tab
        focus = {"compose": "#registry-tree", "watch": "#run-list", "history": "#history-table"}[tab]
        self._focus_when_mounted(tab, focus)

    def _focus_when_mounted(self, tab: str, selector: str, tries: int = 100) -> None:
        """Watch and History mount just after the first frame: focus their widget once it is there."""
        if self.query_one("#main-tabs", TabbedContent).active != tab:
            return  # the user moved on
        found = self.query(selector)
        if found:
            found.first().focus()
        elif tries:
            self.set_timer(0.05, partial(self._focus_when_mounted, tab, selector, tries - 1))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.tabbed_content.id == "main-tabs" and event.pane.id == "history":
            for history in self.query(HistoryPane):
                history.rescan()

    def action_help(self) -> None:
        from demtui.tui.dialogs import HelpScreen

        self.push_screen(HelpScreen())

    def action_zoom(self) -> None:
        """One key maximises the pane in view (plots, tables, the form); again restores it."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        tab = self.query_one("#main-tabs", TabbedContent).active
        target = {"compose": "#form-scroll", "watch": "#watch-tabs", "history": "#history-table"}.get(tab)
        if target and screen is self.screen_stack[0]:
            screen.maximized = self.query_one(target)

    # -- run extras: report, UAPs, the CLI command -----------------------------------------
    def show_report(self, run_dir: Path) -> None:
        from demtui.tui.extras import ReportScreen

        self.push_screen(ReportScreen(run_dir / "report.md"))

    def show_uaps(self, run_dir: Path) -> None:
        from demtui.tui.extras import UapScreen

        self.push_screen(UapScreen(run_dir))

    def copy_command(self, spec: dict[str, Any], out: Path | None) -> str:
        """Copy the equivalent `demtui run` command (OSC 52) and show it, for terminals without a clipboard."""
        from demtui.tui.extras import cli_command, resolved_defaults

        defaults = resolved_defaults(spec, self.registry) if self.registry is not None else {}
        command = cli_command(spec, out, defaults)
        self.copy_to_clipboard(command)
        self.notify(command, title="Copied the CLI command", timeout=12)
        return command

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def ask_path(self, title: str, value: str, callback: Any) -> None:
        """The inline path prompt above the footer (Tab completes)."""
        self.query_one(PromptBar).ask(title, value, callback)

    def action_open_dir(self) -> None:
        self.ask_path("Open run directory", str(self.runs_dir) + os.sep,
                      lambda p: self.open_run(Path(p)) if p else None)

    async def action_quit(self) -> None:
        active = self.executor.active()
        if not active:
            self.exit()
            return
        from demtui.tui.dialogs import QuitScreen

        queued = [h for h in active if h.status == QUEUED]

        def chosen(choice: str | None) -> None:
            if choice == "keep":
                save_queue(self.runs_dir, queued)
            if choice in ("cancel", "keep"):
                self.executor.shutdown(cancel=choice == "cancel")
                self.exit()

        self.push_screen(QuitScreen(len(active) - len(queued), len(queued)), chosen)

    @work(thread=True, exit_on_error=False, group="adopt")
    def adopt_live_runs(self) -> None:
        """On start, Watch follows the runs still going from an earlier session (their pids are alive)."""
        from demtui.tui.runinfo import live_runs

        found = live_runs(self.runs_dir)
        if found:
            self.call_from_thread(self._adopt, [i.path for i in found])

    def _adopt(self, paths: list[Path]) -> None:
        keys = [self.follow(path) for path in paths]
        watch = self.query(WatchPane)
        if keys and (not watch or watch.first().key is None):
            self.select_run(keys[0])
        self.notify(f"Watching {len(paths)} run(s) still going from an earlier session.", title="Watch")

    def restore_queue(self) -> None:
        """Runs queued when the last session quit with 'keep': queue them again."""
        entries = take_queue(self.runs_dir)
        for entry in entries:
            run_dir = Path(entry["run_dir"])
            try:
                handle = self.executor.submit(None, run_dir, device=str(entry.get("device", "auto")),
                                              resume=bool(entry.get("resume")))
            except (OSError, RuntimeError) as exc:
                self.notify(f"{run_dir.name}: {exc}", title="Queue", severity="error")
                continue
            self.handles[self.follow(run_dir)] = handle
        if entries:
            self.notify(f"{len(entries)} run(s) queued in the last session are queued again.", title="Queue")


QUEUE_FILE = ".demtui-queue.json"


def save_queue(runs_dir: Path, handles: list[RunHandle]) -> None:
    """Queued runs survive quitting: their directories (with submitted.toml) and devices."""
    import json

    if not handles:
        return
    from demtui.store import atomic_write_text

    entries = [{"run_dir": str(h.run_dir.resolve()), "device": h.device, "resume": h.resume} for h in handles]
    runs_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(runs_dir / QUEUE_FILE, json.dumps(entries, indent=1))


def take_queue(runs_dir: Path) -> list[dict[str, Any]]:
    """The saved queue (removed once read, so it is restored once)."""
    import json

    path = runs_dir / QUEUE_FILE
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        path.unlink()
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("run_dir"), str)
            and Path(e["run_dir"]).is_dir()] if isinstance(entries, list) else []


def make_app(**kwargs: Any) -> DemtuiApp:
    """The factory the CLI and the tests share."""
    return DemtuiApp(**kwargs)


def run_tui() -> None:
    make_app().run()
