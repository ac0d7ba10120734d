"""Watch: one run at a time, live — stages with ETA, entropy histograms, SR/AAcc, loss, log.

The pane renders a RunView (folded from events.jsonl by the app); it never reads files.
``show`` is called at most ~10×/s and redraws only what changed since the last call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, OptionList, ProgressBar, RichLog, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from demtui.report import summary_rows
from demtui.tui.plots import HistogramData, HistogramPlot, LinePlot, rebin
from demtui.tui.runview import RunView

STAGE_MARK = {"finished": ("✓", "green"), "skipped": ("↷", "cyan"), "running": ("▶", "bold yellow"),
              "failed": ("✗", "bold red"), "cancelled": ("■", "magenta"), "died": ("✗", "bold red"), "pending": ("·", "dim")}
STATUS_STYLE = {"finished": "green", "failed": "bold red", "cancelled": "magenta", "running": "yellow",
                "queued": "cyan", "waiting": "dim", "died": "bold red"}
LOSS_ORDER = ("defend", "attack", "secondary", "prepare")


SHORT = {"fresh attack on repaired model": "fresh attack after", "of random noise (same threat model)": "of random noise",
         "Entropy gap at repair layer (RQ1)": "Entropy gap (RQ1)", "Time (s): attack / defense": "Time (s) atk / def"}


def short_label(label: str) -> str:
    """The report's row labels, shortened to fit beside two numbers at 80 columns."""
    for long, short in SHORT.items():
        label = label.replace(long, short)
    return label


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class WatchPane(Horizontal):
    BINDINGS = [
        Binding("x", "cancel_run", "Cancel"),
        Binding("r", "resume_run", "Resume"),
        Binding("o", "open_dir", "Open dir"),
        Binding("left_square_bracket", "role(-1)", "Layer◀", show=False),
        Binding("right_square_bracket", "role(1)", "Layer", show=False),
        Binding("t", "target", "Target", show=False),
        Binding("l", "loss", "Loss curve", show=False),
        Binding("h", "inner_tab('tab-entropy')", "Histograms", show=False),
        Binding("s", "inner_tab('tab-results')", "SR table", show=False),
        Binding("p", "inner_tab('tab-loss')", "Loss plot", show=False),
        Binding("g", "inner_tab('tab-log')", "Log", show=False),
        Binding("m", "report", "Report", show=False),
        Binding("u", "uaps", "UAPs", show=False),
        Binding("y", "copy_command", "Copy CLI", show=False),
        Binding("slash", "filter", "Filter", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key: str | None = None
        self.role_index = 0
        self.target: str | None = None  # None: all targets
        self.loss_stage: str | None = None
        self.loss_pinned = False  # True once the user picked a curve with l
        self.filter_text = ""
        self._entries: list[tuple[str, str, str]] = []
        self._drawn: tuple[Any, ...] = ()
        self._rows: tuple[Any, ...] = ()
        self._log_written = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="run-side"):
            yield Label("Runs  (/ filter)", classes="side-title")
            yield Input(placeholder="filter runs", id="run-filter", compact=True)
            yield OptionList(id="run-list")
        with Vertical(id="watch-main"):
            yield Static("No run yet: launch one from Compose (F2), open one from History (F4) or press o.",
                         id="run-header")
            yield Static("", id="stage-strip")
            with Horizontal(id="stage-progress"):
                yield ProgressBar(total=100, show_eta=False, id="stage-bar")
                yield Label("", id="stage-eta")
            yield Static("", id="run-problem")
            with TabbedContent(id="watch-tabs"):
                with TabPane("Entropy h", id="tab-entropy"):
                    yield Static("", id="hist-controls")
                    with Horizontal(id="hist-row"):
                        yield HistogramPlot(empty="waiting for the analyse stage", id="hist-before")
                        yield HistogramPlot(empty="waiting for the evaluate stage", id="hist-after")
                with TabPane("SR/AAcc s", id="tab-results"):
                    yield DataTable(id="target-table", show_cursor=False, zebra_stripes=True, header_height=2)
                    yield DataTable(id="summary-table", show_cursor=False)
                with TabPane("Loss p", id="tab-loss"):
                    yield LinePlot(empty="no loss reported yet (the defend stage reports one)", id="loss-plot")
                with TabPane("Log g", id="tab-log"):
                    yield RichLog(id="log-pane", wrap=True, markup=False, max_lines=2000)

    def on_mount(self) -> None:
        self.query_one("#run-filter").display = False
        pending = getattr(self.app, "pending_select", None)
        if pending:  # a run opened before this pane was mounted (it mounts after the first frame)
            self.app.pending_select = None  # type: ignore[attr-defined]
            self.call_after_refresh(self.app.select_run, pending)  # type: ignore[attr-defined]
        self._target_columns("SR")
        self.query_one("#summary-table", DataTable).add_columns("Metric", "Before", "After")
        self.query_one("#run-problem").display = False

    # -- run list ------------------------------------------------------------------------
    def set_runs(self, entries: list[tuple[str, str, str]]) -> None:
        """(key, name, status) per followed run; keeps the highlight where it was."""
        olist = self.query_one("#run-list", OptionList)
        width = max(8, olist.size.width - 3)
        self._entries = entries
        words = self.filter_text.lower().split()
        labels = [(key, self._label(name, status, width)) for key, name, status in entries
                  if all(w in f"{name} {status}".lower() for w in words)]
        current = [o.id for o in olist.options]
        if current == [k for k, _ in labels]:
            for key, label in labels:
                olist.replace_option_prompt(key, label)
            return
        olist.set_options([Option(label, id=key) for key, label in labels])
        if self.key in [k for k, _ in labels]:
            olist.highlighted = olist.get_option_index(self.key)  # type: ignore[arg-type]

    @staticmethod
    def _label(name: str, status: str, width: int) -> Text:
        """One line per run (the name cut with … when it must be), its status dim below."""
        shown = name if len(name) <= width - 2 else name[:max(1, width - 3)] + "…"
        return Text.assemble(("● ", STATUS_STYLE.get(status, "")), shown, (f"\n  {status}", "dim"))

    def on_resize(self) -> None:
        self.app.dirty.add(self.key or "")  # type: ignore[attr-defined]  # re-cut the run names

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.key:
            self.app.select_run(event.option.id)  # type: ignore[attr-defined]

    def select(self, key: str) -> None:
        if key != self.key:
            self.key, self.role_index, self.target, self.loss_stage = key, 0, None, None
            self.loss_pinned = False
            self._drawn, self._rows, self._log_written = (), (), 0
            self.query_one("#log-pane", RichLog).clear()
            olist = self.query_one("#run-list", OptionList)
            if key in [o.id for o in olist.options]:
                olist.highlighted = olist.get_option_index(key)

    # -- rendering -----------------------------------------------------------------------
    def show(self, view: RunView, status: str, note: str, live: bool, now: float | None) -> None:
        stamp = (view.version, status, note, self.role_index, self.target, self.loss_stage,
                 round(now) if live and now else None)
        if stamp == self._drawn:
            return
        self._drawn = stamp
        self._header(view, status)
        self._stages(view, live, now)
        problems = [p for p in (view.error, note, *view.warnings()) if p]
        box = self.query_one("#run-problem", Static)
        box.update(Text("\n".join(dict.fromkeys(problems)), style="bold red" if status == "failed" else "yellow"))
        box.display = bool(problems)
        self._histograms(view)
        self._tables(view)
        self._loss(view)
        self._log(view)

    def _header(self, view: RunView, status: str) -> None:
        spec = view.spec
        text = Text(view.name, style="bold")
        text.append(f"  {status}", style=STATUS_STYLE.get(status, ""))
        if view.device:
            text.append(f"  on {view.device}", style="dim")
        if spec:
            defense = spec.get("defense", {}).get("name", "none")
            targets = ",".join(map(str, spec.get("run", {}).get("targets", []))) or "untargeted"
            text.append(f"\n{spec.get('model', {}).get('name')} on {spec.get('dataset', {}).get('name')} · "
                        f"{spec.get('attack', {}).get('name')} → {defense} · targets {targets}", style="dim")
        self.query_one("#run-header", Static).update(text)

    def _stages(self, view: RunView, live: bool, now: float | None) -> None:
        strip = Text()
        for name in view.stage_order:
            mark, style = STAGE_MARK.get(view.stages[name].status, ("?", ""))
            strip.append(f"{mark}{name} ", style=style)
        self.query_one("#stage-strip", Static).update(strip)
        bar = self.query_one("#stage-bar", ProgressBar)
        st = view.stages.get(view.current)
        done, total = view.overall()
        if st is not None and st.status == "running":
            f = view.fraction(st)
            bar.update(total=100 if f is not None or not live else None, progress=(f or 0) * 100)
            eta = view.eta(st, now if live else None)
            info = " ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in st.info.items())
            label = f"{st.name} · ETA {fmt_seconds(eta)} · stage {done + 1}/{total}  {info}"
        else:
            bar.update(total=100, progress=100 * done / total if total else 0)
            seconds = (view.last_time - view.first_time) if view.first_time and view.last_time else None
            label = f"{done}/{total} stages · {fmt_seconds(seconds)} wall time" if total else ""
        self.query_one("#stage-eta", Label).update(label)

    def _histograms(self, view: RunView) -> None:
        roles = view.roles()
        controls = self.query_one("#hist-controls", Static)
        if not roles:
            controls.update(Text("Entropy histograms appear after the analyse stage.", style="dim"))
            for pid in ("#hist-before", "#hist-after"):
                self.query_one(pid, HistogramPlot).set_data(None)
            return
        role = roles[self.role_index % len(roles)]
        target = self.target if self.target in view.target_keys() else None
        shown = view.label(target) if target else "all (summed)"
        controls.update(Text.assemble(("Layer ", "dim"), (f"{role}", "bold"),
                                      (f" {self.role_index % len(roles) + 1}/{len(roles)} · target ", "dim"),
                                      (shown, "bold"), ("  [ ] layer · t target", "dim")))
        shown_h = [view.histograms.get((phase, role)) for phase in ("before", "after")]
        present = [h for h in shown_h if h is not None]
        # one x-range for both panels, so a shift of the distribution reads as a shift
        x_lo = min((h.lo for h in present), default=0.0)
        x_hi = max((h.hi for h in present), default=1.0)
        nbins = max((h.bins for h in present), default=0)
        for h, pid, title in zip(shown_h, ("#hist-before", "#hist-after"), ("Before defense", "After defense")):
            plot = self.query_one(pid, HistogramPlot)
            if h is None:
                plot.set_data(None)
                continue
            keys = [target] if target else list(h.perturbed)
            pert = [h.perturbed[k] for k in keys if k in h.perturbed]
            summed = tuple(sum(col) for col in zip(*pert)) if pert else None
            means = [h.perturbed_mean[k] for k in keys if isinstance(h.perturbed_mean.get(k), (int, float))]
            uaps = tuple(h.uap_mean[k] for k in ([target] if target else list(h.uap_mean)) if k in h.uap_mean)
            plot.set_data(HistogramData(
                title=f"{title} · {h.layer}", lo=x_lo, hi=x_hi,
                clean=rebin(h.clean, h.lo, h.hi, x_lo, x_hi, nbins) if h.clean else None,
                perturbed=rebin(summed, h.lo, h.hi, x_lo, x_hi, nbins), clean_mean=h.clean_mean,
                perturbed_mean=sum(means) / len(means) if means else None, uap_means=uaps))

    def _tables(self, view: RunView) -> None:
        rows = view.target_rows()
        headline = [(short_label(r[0]), r[1], r[2]) for r in summary_rows(view.live_summary()) if r[1] or r[2]]
        if (rows, headline) == self._rows:
            return  # unchanged: no redraw, no flicker
        self._rows = (rows, headline)
        self._target_columns("SR" if view.mode == "targeted" else "FR")
        for table_id, content in (("#target-table", rows), ("#summary-table", headline)):
            table = self.query_one(table_id, DataTable)
            table.clear()
            table.add_rows(content)

    def _target_columns(self, sr: str) -> None:
        """SR for targeted runs, FR (fooling rate) for non-targeted ones."""
        table = self.query_one("#target-table", DataTable)
        if table.columns and str(list(table.columns.values())[1].label).startswith(sr + "\n"):
            return
        table.clear(columns=True)
        table.add_columns("Target", f"{sr}\nbefore", f"{sr}\nafter", "AAcc\nbefore", "AAcc\nafter", f"{sr}\nsecondary")

    def _loss(self, view: RunView) -> None:
        stages = [s for s in LOSS_ORDER if view.losses.get(s)] + [s for s in view.losses if s not in LOSS_ORDER]
        running = view.stages.get(view.current)
        if not self.loss_pinned and running is not None and running.status == "running" and view.current in stages:
            self.loss_stage = view.current  # a live run: the curve of the stage running now
        if self.loss_stage not in stages:
            self.loss_stage = stages[0] if stages else None
        plot = self.query_one("#loss-plot", LinePlot)
        if self.loss_stage is None:
            plot.set_data("Training loss", [])
            return
        series = view.losses[self.loss_stage]
        hint = "  (l: next curve)" if len(stages) > 1 else ""
        plot.set_data(f"Loss · {self.loss_stage}{hint}", series)

    def _log(self, view: RunView) -> None:
        log = self.query_one("#log-pane", RichLog)
        new = view.log_total - self._log_written
        if new <= 0:
            return
        for level, message in list(view.logs)[-min(new, len(view.logs)):]:
            style = {"warning": "yellow", "error": "bold red"}.get(level, "")
            log.write(Text(message, style=style))
        self._log_written = view.log_total

    # -- actions -------------------------------------------------------------------------
    def action_cancel_run(self) -> None:
        if self.key:
            self.app.cancel_run(self.key)  # type: ignore[attr-defined]

    def action_resume_run(self) -> None:
        if self.key:
            self.app.resume_run(self.key)  # type: ignore[attr-defined]

    def action_open_dir(self) -> None:
        self.app.action_open_dir()  # type: ignore[attr-defined]

    def action_filter(self) -> None:
        field = self.query_one("#run-filter", Input)
        field.display = True
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "run-filter":
            self.filter_text = event.value
            self.set_runs(self._entries)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "run-filter":
            self.query_one("#run-list").focus()

    def action_report(self) -> None:
        if self.key:
            self.app.show_report(Path(self.key))  # type: ignore[attr-defined]

    def action_uaps(self) -> None:
        if self.key:
            self.app.show_uaps(Path(self.key))  # type: ignore[attr-defined]

    def action_copy_command(self) -> None:
        view = self.app.views.get(self.key) if self.key else None  # type: ignore[attr-defined]
        if view is None or not view.spec:
            self.notify("This run has no spec yet to copy.", title="Copy CLI", severity="warning")
            return
        self.app.copy_command(view.spec, Path(self.key))  # type: ignore[attr-defined,arg-type]

    def action_inner_tab(self, tab: str) -> None:
        self.query_one("#watch-tabs", TabbedContent).active = tab

    def action_role(self, step: int) -> None:
        self.role_index += step
        self.app.refresh_watch()  # type: ignore[attr-defined]

    def action_target(self) -> None:
        view = self.app.views.get(self.key) if self.key else None  # type: ignore[attr-defined]
        keys = view.target_keys() if view else []
        order: list[str | None] = [None, *keys]
        self.target = order[(order.index(self.target) + 1) % len(order)] if self.target in order else None
        self.app.refresh_watch()  # type: ignore[attr-defined]

    def action_loss(self) -> None:
        view = self.app.views.get(self.key) if self.key else None  # type: ignore[attr-defined]
        stages = [s for s in LOSS_ORDER if view and view.losses.get(s)]
        stages += [s for s in (view.losses if view else {}) if s not in LOSS_ORDER and view.losses.get(s)]
        if stages and self.loss_stage in stages:
            self.loss_stage = stages[(stages.index(self.loss_stage) + 1) % len(stages)]
            self.loss_pinned = True
        self.app.refresh_watch()  # type: ignore[attr-defined]
