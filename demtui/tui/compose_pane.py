"""Compose: browse the registry, pick a combination, edit params, save/load/launch a spec.

Everything here is metadata: component records and Param schemas from the registry, the
spec dict that ``demtui.spec.resolve`` validates (the same sentences as the CLI), and
the TOML that ``RunSpec.to_toml`` writes. No model code is imported.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
import asyncio

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import Input, Label, Select, Static, Tree

from demtui.errors import DemtuiError
from demtui.params import ParamSchema
from demtui.spec import (
    MODEL_COMMON,
    RUN_PARAMS,
    VICTIM_PARAMS,
    RunSpec,
    merge,
    quickstart_dict,
    read_spec_file,
    resolve,
)
from demtui.devices import Device
from demtui.tui.forms import ParamForm, text_of
from demtui.tui.grid_view import EXECUTORS, check_sweep_text, parse_sweep_text

if TYPE_CHECKING:
    from demtui.registry import Registry

PICKED = ("model", "dataset", "attack", "defense")
KIND_TITLES = (("model", "Models"), ("dataset", "Datasets"), ("layers", "Entropy layers"),
               ("attack", "Attacks"), ("defense", "Defenses"))
RUN_FORM = ParamSchema(tuple(p for p in RUN_PARAMS if p.name != "device"))
PLUGIN_MARK = {"ok": ("✓", "green"), "failed": ("✗", "red"), "partial": ("!", "yellow"), "empty": ("∅", "yellow"),
               "disabled": ("·", "dim")}


def slug(spec: RunSpec) -> str:
    name = f"{spec.model.name}-{spec.attack.name}-{spec.defense.name if spec.defense else 'none'}"
    return name.replace(":", "_").replace("/", "_")


class ComposePane(Horizontal):
    """Left: the registry tree and a details panel. Right: the spec form."""

    BINDINGS = [
        Binding("ctrl+r", "launch", "Launch"),
        Binding("ctrl+s", "save", "Save spec"),
        Binding("ctrl+o", "load", "Load spec"),
        Binding("ctrl+n", "reset", "Quickstart"),
        Binding("ctrl+y", "copy_command", "Copy CLI", show=False),
    ]

    def __init__(self, registry: Registry | None, registry_error: str, devices: list[Device], *,
                 loading: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry = registry
        self.registry_error = registry_error
        self.devices = devices
        self._timer: Timer | None = None
        self.last_error = ""
        self.loading = loading  # the registry is still on its way (it loads after the first frame)
        self._loads = 0  # forms being (re)built: validation waits, so no bogus "needs a value"
        self._load_lock = asyncio.Lock()

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="catalogue"):
            yield Tree("Registry", id="registry-tree")
            yield Static("Highlight a component to see it; Enter uses it.", id="component-info")
        with Vertical(id="form-side"):
            with Horizontal(classes="compose-top"):
                yield Label("Name", classes="top-label")
                yield Input(placeholder="auto: model-attack-defense-time", id="run-name", compact=True)
            with Horizontal(classes="compose-top"):
                yield Label("Device", classes="top-label")
                yield Select([(d.label, d.value) for d in self.devices], value="auto", allow_blank=False,
                             id="run-device", compact=True)
                yield Label("Targets", classes="top-label")
                yield Input("", placeholder="e.g. 0,3,5", id="run-targets", compact=True)
            with Horizontal(classes="compose-top"):
                yield Label("Sweep", classes="top-label")
                yield Input(placeholder="attack.eps=4/255,8/255;…",
                            id="run-sweep", compact=True)
                yield Label("on", classes="top-label")
                yield Select([(e, e) for e in EXECUTORS], value="local", allow_blank=False, id="run-executor",
                             compact=True)
            yield VerticalScroll(id="form-scroll")
            yield Static("Tab moves between fields; the focused field's help shows here.", id="field-help")
            yield Static("", id="spec-status")

    def on_mount(self) -> None:
        self.query_one("#registry-tree").focus()
        if self.loading:
            self.query_one("#spec-status", Static).update(Text("Loading the registry…", style="dim"))
            return
        self._fill_tree()
        if self.registry is not None:  # after the first frame, so the window opens at once
            self.call_after_refresh(self.load_dict, quickstart_dict())

    async def set_registry(self, registry: Registry | None, error: str) -> None:
        """The registry arrived (after the first frame): fill the tree and the quickstart form."""
        self.registry, self.registry_error, self.loading = registry, error, False
        self._fill_tree()
        if registry is not None:
            await self.load_dict(quickstart_dict())
        else:
            self.validate_spec()

    def _fill_tree(self) -> None:
        tree = self.query_one("#registry-tree", Tree)
        tree.root.remove_children()
        tree.show_root = False
        tree.root.expand()
        if self.registry is None:
            tree.root.add_leaf(Text(f"✗ registry failed: {self.registry_error}", style="red"), data=("error",))
            self._info(Text(self.registry_error, style="red"))
            return
        reg = self.registry
        for kind, title in KIND_TITLES:
            node = tree.root.add(f"{title} ({len(reg.components[kind])})", data=("kind", kind),
                                 expand=kind in ("attack", "defense", "dataset", "model"))
            for comp in reg.list(kind):
                ref = reg.ref_of(comp)  # name@plugin when two plugins share the name
                node.add_leaf(ref, data=("component", kind, ref))
        broken = reg.broken()
        plugins = tree.root.add(f"Plugins ({len(reg.plugins)}, {len(broken)} broken)", data=("kind", "plugins"),
                                expand=bool(broken))
        for index, rec in enumerate(reg.plugins):
            mark, style = PLUGIN_MARK.get(rec.status, ("?", ""))
            node = plugins.add(Text(f"{mark} {rec.name}", style=style), data=("plugin", index), expand=bool(rec.problems))
            for problem in rec.problems:
                node.add_leaf(Text(problem, style=style), data=("plugin", index))
        if self.registry_error:
            tree.root.add_leaf(Text(f"! {self.registry_error}", style="yellow"), data=("error",))

    def _info(self, text: Text | str) -> None:
        self.query_one("#component-info", Static).update(text)

    # -- registry browsing ---------------------------------------------------------------
    @on(Tree.NodeHighlighted, "#registry-tree")
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        data = event.node.data or ()
        if not data or self.registry is None:
            return
        if data[0] == "component":
            self._info(self._component_text(data[1], data[2]))
        elif data[0] == "plugin":
            rec = self.registry.plugins[data[1]]
            text = Text(f"{rec.name}\n", style="bold")
            text.append(f"{rec.source}{' · ' + rec.package + ' ' + rec.version if rec.package else ''} · {rec.status}\n")
            if rec.problems:
                text.append("\n".join(rec.problems) + "\n", style="red" if rec.status == "failed" else "yellow")
            if rec.provides:
                text.append("provides " + ", ".join(rec.provides))
            self._info(text)

    def _component_text(self, kind: str, name: str) -> Text:
        assert self.registry is not None
        comp = self.registry.get(kind, name)
        text = Text(f"{comp.name}", style="bold")
        text.append(f"  {kind} · plugin {self.registry.owner(kind, name)}\n", style="dim")
        text.append(comp.summary + "\n")
        for attr in ("threat", "changes", "family", "repair"):
            if hasattr(comp, attr):
                text.append(f"{attr}: {getattr(comp, attr)}  ", style="dim")
        if kind == "layers":
            text.append("\n" + ", ".join(f"{r}={p}" for r, p in comp.layers), style="dim")  # type: ignore[attr-defined]
        if len(comp.params):
            text.append("\n" + ", ".join(f"{p.name}={text_of(p.default) or '—'}" for p in comp.params), style="dim")
        if kind in PICKED:
            text.append("\nEnter: use it", style="italic dim")
        return text

    @on(Tree.NodeSelected, "#registry-tree")
    def _selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data or ()
        if data and data[0] == "component" and data[1] in PICKED:
            self.query_one(f"#pick-{data[1]}", Select).value = data[2]

    # -- the form ------------------------------------------------------------------------
    def _options(self, section: str) -> list[tuple[str, str]]:
        assert self.registry is not None
        names = self.registry.names(section)
        return [(n, n) for n in names] + ([("none", "none")] if section == "defense" else [])

    def _schema(self, section: str, name: str) -> ParamSchema:
        assert self.registry is not None
        if section == "model":
            source = self.registry.get("model", name)
            return ParamSchema(tuple(MODEL_COMMON) + tuple(source.params))
        if section == "defense" and name == "none":
            return ParamSchema()
        return self.registry.get(section, name).params

    def _pick_name(self, section: str, data: dict[str, Any]) -> tuple[str, str]:
        """The component name (and model arch) from spec data, or a default with a notice."""
        assert self.registry is not None
        wanted = str(data.get(section, {}).get("name", ""))
        name, _, arch = wanted.partition(":")
        if section == "defense" and name in ("", "none"):
            return "none", ""
        try:
            self.registry.get(section, name)
            return name, arch
        except DemtuiError as exc:
            self.notify(str(exc), title="Spec", severity="error")
            fallback = str(quickstart_dict()[section]["name"])
            return (fallback if fallback in self.registry.components[section] else self.registry.names(section)[0]), ""

    async def load_dict(self, data: dict[str, Any]) -> None:
        """Fill the whole form from a spec dict (quickstart, or a loaded file); one load at a time."""
        if self.registry is None:
            self.notify("The registry is still loading; try again in a moment.", title="Spec", severity="warning")
            return
        self._loads += 1
        try:
            async with self._load_lock:
                await self._load_dict(data)
        finally:
            self._loads -= 1
        self.schedule_validation()

    async def _load_dict(self, data: dict[str, Any]) -> None:
        run = dict(data.get("run", {}))
        device = str(run.pop("device", "auto"))
        select = self.query_one("#run-device", Select)
        if device not in [d.value for d in self.devices]:
            self.devices.append(Device(device, f"{device} (not detected here)"))
            select.set_options([(d.label, d.value) for d in self.devices])
        select.value = device
        self.query_one("#run-targets", Input).value = text_of(run.pop("targets", []))
        scroll = self.query_one("#form-scroll", VerticalScroll)
        await scroll.remove_children()
        widgets = []
        for section in PICKED:
            name, arch = self._pick_name(section, data)
            values = {k: v for k, v in data.get(section, {}).items() if k != "name"}
            widgets += [Label(section.capitalize(), classes="section-title"), self._pick_row(section, name, arch),
                        self._form(section, name, arch, values)]
        widgets += [Label("Run options", classes="section-title"), ParamForm("run", "run", RUN_FORM, run, id="form-run"),
                    Label("Victim training", classes="section-title"),
                    ParamForm("victim", "victim", VICTIM_PARAMS, data.get("victim", {}), id="form-victim")]
        await scroll.mount_all(widgets)

    def _pick_row(self, section: str, name: str, arch: str) -> Horizontal:
        children: list[Any] = [Select(self._options(section), value=name, allow_blank=False, id=f"pick-{section}",
                                      compact=True)]
        if section == "model":
            children.append(Input(arch, placeholder="architecture", id="model-arch", compact=True))
        row = Horizontal(*children, classes="pick-row", id=f"row-{section}")
        return row

    def _form(self, section: str, name: str, arch: str, values: dict[str, Any]) -> ParamForm:
        ref = f"{name}:{arch}" if arch else name
        form = ParamForm(section, f"{section} {ref}", self._schema(section, name), values, id=f"form-{section}")
        return form

    def _arch_visibility(self) -> None:
        if self.registry is None:
            return
        name = self.query_one("#pick-model", Select).value
        source = self.registry.components["model"].get(str(name))
        arch = self.query_one("#model-arch", Input)
        arch.display = bool(source and getattr(source, "family", False))
        if source is not None and getattr(source, "examples", ()):
            arch.placeholder = "e.g. " + source.examples[0].partition(":")[2]

    @on(Select.Changed, ".pick-row Select")
    async def _component_changed(self, event: Select.Changed) -> None:
        section = (event.select.id or "").removeprefix("pick-")
        form = self.query_one(f"#form-{section}", ParamForm)
        name = str(event.value)
        if form.owner.split(" ", 1)[1].partition(":")[0] == name:
            self._arch_visibility()
            return
        await form.remove()
        arch = self.query_one("#model-arch", Input).value.strip() if section == "model" else ""
        await self.query_one("#form-scroll").mount(self._form(section, name, arch, {}), after=f"#row-{section}")
        self._arch_visibility()
        self.schedule_validation()

    @on(Input.Changed, "#model-arch")
    def _arch_changed(self, event: Input.Changed) -> None:
        form = self.query_one("#form-model", ParamForm)
        name = str(self.query_one("#pick-model", Select).value)
        form.owner = f"model {name}:{event.value.strip()}" if event.value.strip() else f"model {name}"
        self.schedule_validation()

    @on(Input.Changed, "#run-targets, #run-name, #run-sweep")
    @on(Select.Changed, "#run-device")
    @on(ParamForm.Edited)
    def _edited(self) -> None:
        self.schedule_validation()

    def on_descendant_focus(self, event: Any) -> None:
        widget = event.widget
        for form in self.query(ParamForm):
            text = form.help_for(widget)
            if text:
                self.query_one("#field-help", Static).update(text)
                return
        help_text = {"run-name": "Run directory name under the runs folder (blank: model-attack-defense-time).",
                     "run-targets": "Target classes for targeted UAPs: indices or names, comma-separated.",
                     "run-device": "Where the run process computes; one run per device at a time.",
                     "model-arch": "Architecture inside a model family, e.g. resnet50.",
                     "run-sweep": "Axes of a grid, section.param=v1,v2 separated by ';' (as --sweep), or a paper "
                                  "table (table4, table4:paper; as demtui reproduce). Ctrl+R then launches the grid "
                                  "and shows it.",
                     "run-executor": "Where a grid's runs execute: local processes, inline (one after another), "
                                     "a Ray cluster or SLURM (their extras must be installed)."}.get(widget.id or "")
        if help_text:
            self.query_one("#field-help", Static).update(help_text)

    # -- validation ----------------------------------------------------------------------
    def schedule_validation(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.15, self.validate_spec)

    def spec_dict(self) -> dict[str, Any]:
        forms = {f.section: f for f in self.query(ParamForm)}
        device = self.query_one("#run-device", Select).value
        out: dict[str, Any] = {"run": {**forms["run"].values(), "device": str(device),
                                       "targets": self.query_one("#run-targets", Input).value}}
        for section in PICKED:
            name = str(self.query_one(f"#pick-{section}", Select).value)
            if section == "model" and self.query_one("#model-arch", Input).display:
                arch = self.query_one("#model-arch", Input).value.strip()
                name = f"{name}:{arch}" if arch else name
            out[section] = {"name": name, **forms[section].values()} if name != "none" else {"name": "none"}
        out["victim"] = forms["victim"].values()
        return out

    def validate_spec(self) -> RunSpec | None:
        """Resolve the form as the CLI would; the status line shows the first problem."""
        if not self.is_attached:
            return None
        status = self.query_one("#spec-status", Static)
        if self.loading or self._loads:  # the form is being built: judge it when it is complete
            self.last_error = "the form is still loading"
            status.update(Text("Loading the form…", style="dim"))
            status.set_class(False, "-error")
            return None
        if self.registry is None:
            status.update(Text("✗ no registry: " + self.registry_error, style="bold red"))
            return None
        try:
            if len(self.query(ParamForm)) < len(PICKED) + 2:
                raise NoMatches("forms")
            data = self.spec_dict()
        except NoMatches:  # the form is still being (re)built: look again shortly
            self.last_error = "the form is still loading"
            self.schedule_validation()
            return None
        try:
            spec = resolve(data, self.registry)
        except DemtuiError as exc:
            self.last_error = str(exc)
            status.update(Text("✗ " + self.last_error, style="bold red"))
            status.set_class(True, "-error")
            return None
        problem = self._extra_checks(spec)
        if problem:
            self.last_error = problem
            status.update(Text("✗ " + problem, style="bold red"))
            status.set_class(True, "-error")
            return None
        self.last_error = ""
        defense = spec.defense.name if spec.defense else "none"
        status.update(Text(f"✓ valid: {spec.model.name} on {spec.dataset.name}, {spec.attack.name} → {defense}, "
                           f"targets {','.join(map(str, spec.targets)) or 'untargeted'}. Ctrl+R launches.",
                           style="green"))
        status.set_class(False, "-error")
        return spec

    def _extra_checks(self, spec: RunSpec) -> str:
        """Targets against the dataset's classes, and the run name: marked on the field too."""
        from demtui.tui.checks import check_run_name, check_targets, dataset_classes

        classes, count = dataset_classes(self.registry, spec.dataset.name)
        targets = check_targets(spec.targets, classes, count, f"dataset '{spec.dataset.name}'")
        runs_dir = getattr(self.app, "runs_dir", Path("runs"))
        name = check_run_name(self.query_one("#run-name", Input).value.strip(), runs_dir)
        sweep = check_sweep_text(self.query_one("#run-sweep", Input).value)
        self.query_one("#run-targets", Input).set_class(bool(targets), "-bad")
        self.query_one("#run-name", Input).set_class(bool(name), "-bad")
        self.query_one("#run-sweep", Input).set_class(bool(sweep), "-bad")
        return targets or name or sweep

    # -- actions -------------------------------------------------------------------------
    def run_name(self, spec: RunSpec) -> str:
        typed = self.query_one("#run-name", Input).value.strip()
        return typed or f"{slug(spec)}-{time.strftime('%Y%m%d-%H%M%S')}"

    def action_launch(self) -> None:
        spec = self.validate_spec()
        if spec is None:
            self.notify(self.last_error, title="Cannot launch", severity="error")
            return
        sweeps = parse_sweep_text(self.query_one("#run-sweep", Input).value)
        if sweeps:
            typed = self.query_one("#run-name", Input).value.strip()
            name = typed or f"grid-{slug(spec)}-{time.strftime('%Y%m%d-%H%M%S')}"
            executor = str(self.query_one("#run-executor", Select).value)
            self.app.launch_sweep(spec, name, sweeps, executor)  # type: ignore[attr-defined]
            return
        self.app.launch_spec(spec, self.run_name(spec))  # type: ignore[attr-defined]

    def action_copy_command(self) -> None:
        spec = self.validate_spec()
        if spec is None:
            self.notify(self.last_error, title="Cannot copy", severity="error")
            return
        name = self.query_one("#run-name", Input).value.strip()
        runs_dir = getattr(self.app, "runs_dir", Path("runs"))
        self.app.copy_command(spec.to_dict(), runs_dir / name if name else None)  # type: ignore[attr-defined]

    def action_save(self) -> None:
        spec = self.validate_spec()
        if spec is None:
            self.notify(self.last_error, title="Cannot save", severity="error")
            return
        default = f"{self.query_one('#run-name', Input).value.strip() or slug(spec)}.toml"
        self.app.ask_path("Save spec as", default, lambda p: self.save_to(spec, p))  # type: ignore[attr-defined]

    def save_to(self, spec: RunSpec, path: str | None) -> None:
        if not path:
            return
        from demtui.store import atomic_write_text

        target = Path(path).expanduser()
        try:
            atomic_write_text(target, spec.to_toml())
        except OSError as exc:
            self.notify(f"Cannot write {target}: {exc.strerror}", title="Save", severity="error")
            return
        self.notify(f"Saved {target}", title="Spec")

    def action_load(self) -> None:
        self.app.ask_path("Load spec TOML", "", self._load_chosen)  # type: ignore[attr-defined]

    async def _load_chosen(self, path: str | None) -> None:
        if path:
            await self.load_file(Path(path).expanduser())

    async def load_file(self, path: Path) -> bool:
        """Load a spec TOML into the form; problems are shown, never raised."""
        try:
            data = merge(quickstart_dict(), read_spec_file(path))
        except DemtuiError as exc:
            self.notify(str(exc), title="Cannot load spec", severity="error")
            self.query_one("#spec-status", Static).update(Text("✗ " + str(exc), style="bold red"))
            return False
        await self.load_dict(data)
        try:
            assert self.registry is not None
            resolve(data, self.registry)
        except DemtuiError as exc:
            self.notify(f"Loaded {path.name} with a problem: {exc}", title="Spec", severity="warning")
            return True
        self.notify(f"Loaded {path}", title="Spec")
        return True

    async def action_reset(self) -> None:
        await self.load_dict(quickstart_dict())
