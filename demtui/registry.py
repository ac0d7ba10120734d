"""The plugin manager: loads registry.toml modules, then entry points, never fatally.

Rules (learned from conda, llm and harlequin): each plugin loads on its own inside
try/except and a failure is recorded with its reason and traceback; each record a hook
returns is checked on its own, so one bad record is reported by name while the rest load;
the registry, not the plugin, owns names (:mod:`demtui.names`: the outcome of a clash
never depends on install order); a hook with a misspelled name, or a hook function not
marked ``@hookimpl``, is reported instead of silently ignored.
Set ``DEMTUI_STRICT_PLUGINS=1`` to make every problem fatal (all are listed),
``DEMTUI_NO_PLUGINS=1`` to skip third-party entry points.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pluggy

from demtui import hookspecs
from demtui.components import KINDS, Component, LayerMap, ModelSource, Provider
from demtui.config import RegistryConfig, load_config
from demtui.errors import DemtuiError, PluginError, UnknownComponentError, did_you_mean
from demtui.names import NameTable, plural, split_ref
from demtui.params import deferred_checks
from demtui.plugin_sources import (ENTRY_POINT_GROUP, PluginRecord, entry_point_plugins, full_trace,  # noqa: F401
                                   import_local, import_problem, local_record, where_raised)

#: Statuses that mean "look at this plugin": `list` and `run` warn, strict mode fails.
BROKEN = ("failed", "partial", "empty")


class Registry:
    """Every loaded component, by kind and name, plus the record of each plugin."""

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginRecord] = []
        self.names_table = NameTable()
        #: kind → reference → component: what listings show (see NameTable.listed).
        self.components: dict[str, dict[str, Component]] = self.names_table.listed
        self._objects: dict[str, Any] = {}
        self._observer_errors: set[str] = set()
        #: "[defaults.KIND.NAME] (why)" for each registry.toml default that is invalid or names nothing.
        self.defaults_problems: list[str] = []

    # -- loading ---------------------------------------------------------------------
    def load(self, entry_points: bool = True) -> "Registry":
        for module_name in self.config.modules:
            record = PluginRecord(name=module_name, source="builtin", qualifier="builtin", module=module_name)
            self._load_one(record, lambda m=module_name: importlib.import_module(m))
        for ref in self.config.local:
            record = local_record(ref)
            self._load_one(record, lambda r=ref: import_local(r, self.config.base_dir))
        if entry_points and os.environ.get("DEMTUI_NO_PLUGINS", "") in ("", "0"):
            for record, loader in entry_point_plugins():
                self._load_one(record, loader)
        self._collect()
        if _strict() and self.broken():
            problems = [p for r in self.broken() for p in r.problems]
            raise PluginError(f"DEMTUI_STRICT_PLUGINS is set and {len(problems)} plugin problem(s) were found:\n"
                              + "\n".join(f"  - {p}" for p in problems))
        return self

    def _disabled(self, record: PluginRecord) -> bool:
        wanted = {d.strip().lower() for d in self.config.disable}
        return bool(wanted & {v.lower() for v in (record.name, record.qualifier, record.package) if v})

    def _load_one(self, record: PluginRecord, loader: Callable[[], Any]) -> None:
        self.plugins.append(record)
        if self._disabled(record):
            record.status = "disabled"
            return
        try:
            plugin = loader()
        except Exception as exc:  # a broken plugin must never break the rest
            record.status = "failed"
            record.problem(import_problem(record, exc), full_trace(exc))
            return
        api = getattr(plugin, "DEMTUI_API", hookspecs.API_VERSION)
        if api != hookspecs.API_VERSION:
            record.status = "failed"
            record.problem(f"plugin '{record.name}' targets demtui plugin API {api} but this demtui provides "
                           f"API {hookspecs.API_VERSION}; install a version of the plugin made for it.")
            return
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:
            record.status = "failed"
            record.problem(f"plugin '{record.name}' could not be registered: {exc}.")
            return
        self._objects[record.name] = plugin
        self._check_hook_names(plugin, record)

    def _check_hook_names(self, plugin: Any, record: PluginRecord) -> None:
        known = [n for n in dir(hookspecs) if n.startswith("demtui_")]
        marked = set()
        for caller in self.pm.get_hookcallers(plugin) or []:
            marked.add(caller.name)
            if not caller.has_spec():
                record.problem(f"plugin '{record.name}' implements unknown hook '{caller.name}'."
                               + did_you_mean(caller.name, known))
        for name in known:
            if name not in marked and callable(getattr(plugin, name, None)):
                record.problem(f"plugin '{record.name}' defines {name}() but does not mark it @hookimpl, so demtui "
                               "never calls it; decorate it with hookimpl from demtui.api (or demtui.hookspecs).")

    def _collect(self) -> None:
        for record in self.plugins:
            plugin = self._objects.get(record.name)
            if plugin is None:
                continue
            for hook_name, kind in hookspecs.COMPONENT_HOOKS.items():
                impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if i.plugin_name == record.name]
                if not impls:
                    continue
                try:
                    with deferred_checks():
                        items = impls[0].function()
                except Exception as exc:
                    record.problem(f"plugin '{record.name}' hook {hook_name} raised {type(exc).__name__}: {exc}"
                                   f"{where_raised(exc)}; its other hooks still load.", full_trace(exc))
                    continue
                self._add_items(items, kind, hook_name, record)
            if any(c.name == "demtui_run_event" for c in self.pm.get_hookcallers(plugin) or []):
                record.provides.append("observer")
        by_name = {r.name: r for r in self.plugins}
        for plugin_name, problems in self.names_table.settle().items():
            by_name[plugin_name].problems.extend(problems)
        self._apply_all_defaults(by_name)
        for record in self.plugins:
            _settle_status(record)

    def _add_items(self, items: Any, kind: str, hook_name: str, record: PluginRecord) -> None:
        expected = KINDS[kind]
        if items is None:
            return
        if isinstance(items, Component) or not isinstance(items, (list, tuple)):
            if not isinstance(items, Component):
                record.problem(f"plugin '{record.name}' hook {hook_name} returned {type(items).__name__}; "
                               f"return a list of {expected.__name__} records.")
                return
            items = [items]
        provider = record.provider()
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, expected):
                record.problem(f"plugin '{record.name}' hook {hook_name} returned a {type(item).__name__}; "
                               f"it must return {expected.__name__} records from demtui.components.")
                continue
            if item.problems:
                record.problems.extend(f"plugin '{record.name}': {p}" for p in item.problems)
                continue
            if item.name in seen:
                record.problem(f"plugin '{record.name}' registers {kind} '{item.name}' twice; the first is kept.")
                continue
            seen.add(item.name)
            item = replace(item, provider=provider)
            self.names_table.add(item)
            record.provides.append(f"{kind}:{item.name}")

    def _apply_all_defaults(self, records: dict[str, PluginRecord]) -> None:
        """registry.toml's [defaults.KIND.NAME]: a bare NAME sets what the bare name means, NAME@PLUGIN that one."""
        table = self.names_table
        for kind, wanted in self.config.defaults.items():
            known = {c.name for comps in table.providers.get(kind, {}).values() for c in comps}
            known |= {c.ref for comps in table.providers.get(kind, {}).values() for c in comps}
            for name in wanted:
                if name not in known:
                    self.defaults_problems.append(f"[defaults.{kind}.{name}] (no {kind} is called '{name}'."
                                                  + did_you_mean(name, sorted(known)).rstrip() + ")")
        for kind, by_name in table.providers.items():
            for name, comps in by_name.items():
                for i, comp in enumerate(comps):
                    new = self._apply_defaults(comp, records[comp.provider.plugin])  # type: ignore[union-attr]
                    if new is not comp:
                        comps[i] = new
                        for ref, listed in list(table.listed[kind].items()):
                            if listed is comp:
                                table.listed[kind][ref] = new

    def _apply_defaults(self, item: Component, record: PluginRecord) -> Component:
        by_name = self.config.defaults.get(item.kind, {})
        means_this = self.names_table.listed.get(item.kind, {}).get(item.name) is item
        overrides = {**(by_name.get(item.name, {}) if means_this else {}), **by_name.get(item.ref, {})}
        if not overrides:
            return item
        try:
            return replace(item, params=item.params.with_defaults(overrides, owner=item.name))
        except DemtuiError as exc:
            record.problem(f"registry.toml defaults for {item.kind} '{item.name}': {exc}")
            self.defaults_problems.append(f"[defaults.{item.kind}.{item.name}] ({str(exc).rstrip('.')})")
        return item

    # -- queries ---------------------------------------------------------------------
    def broken(self) -> list[PluginRecord]:
        return [r for r in self.plugins if r.status in BROKEN]

    def owner(self, kind: str, name: str) -> str:
        """The plugin that provides the component ``name`` refers to ('' if none does)."""
        try:
            provider = self.get(kind, name).provider
        except DemtuiError:
            return ""
        return provider.plugin if provider else ""

    def provider(self, kind: str, name: str) -> Provider | None:
        return self.get(kind, name).provider

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def list(self, kind: str, pattern: str = "*") -> list[Component]:
        return [c for n, c in sorted(self.components[kind].items()) if fnmatch.fnmatch(n, pattern)]

    def ref_of(self, component: Component) -> str:
        """How a listing names ``component``: its bare name, or ``name@plugin`` when that is ambiguous."""
        return self.names_table.ref_of(component)

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` (or ``name@plugin``) refers to; errors say how to fix the reference."""
        if kind not in self.components:
            raise UnknownComponentError(f"Unknown component kind '{kind}'." + did_you_mean(kind, KINDS))
        return self.names_table.resolve(kind, name)

    def model_source(self, ref: str) -> tuple[ModelSource, str | None]:
        """Resolve ``torchvision:resnet50``, ``smallcnn`` or ``torchvision:resnet50@builtin`` to (source, arch)."""
        base, qualifier = split_ref(ref)
        prefix, sep, arch = base.partition(":")
        source = self.get("model", f"{prefix}@{qualifier}" if qualifier else prefix)
        assert isinstance(source, ModelSource)
        if sep and not source.family:
            raise UnknownComponentError(f"Model '{prefix}' takes no architecture; write just '{prefix}'.")
        if source.family and not arch:
            example = source.examples[0] if source.examples else f"{prefix}:NAME"
            raise UnknownComponentError(f"Model '{prefix}' needs an architecture, e.g. '{example}'.")
        return source, (arch or None)

    def layer_map(self, model_ref: str) -> LayerMap | None:
        """The first layer map whose patterns match the model reference, if any (built-ins first)."""
        base = split_ref(model_ref)[0]
        maps = [m for by_name in self.names_table.providers["layers"].values() for m in by_name]
        maps.sort(key=lambda m: (m.provider is None or m.provider.source != "builtin", m.name))
        return next((m for m in maps if isinstance(m, LayerMap) and m.applies_to(base)), None)  # type: ignore[misc]

    def find(self, name: str) -> list[Component]:
        """Every component ``name`` (bare or ``name@plugin``) could mean, of any kind (for `demtui show`)."""
        return self.names_table.every(name)

    def all_names(self) -> list[str]:
        return sorted({n for by_name in self.components.values() for n in by_name})

    def emit(self, event: dict[str, Any]) -> None:
        """Hand an event to every observer plugin; a raising observer is reported once."""
        for impl in self.pm.hook.demtui_run_event.get_hookimpls():
            try:
                impl.function(event=event)
            except Exception as exc:
                if impl.plugin_name not in self._observer_errors:
                    self._observer_errors.add(impl.plugin_name)
                    print(f"demtui: observer plugin '{impl.plugin_name}' raised {exc!r}; ignoring it.", file=sys.stderr)


def _plural(kind: str) -> str:
    return plural(kind)


def _settle_status(record: PluginRecord) -> None:
    if record.status in ("failed", "disabled"):
        return
    if not record.provides:
        if record.problems:
            record.status = "failed"
            record.problems.append(f"plugin '{record.name}' provides nothing usable because of the problems above.")
        else:
            record.status = "empty"
            record.problems.append(
                f"plugin '{record.name}' provides nothing: it has no @hookimpl functions, or its hooks returned "
                "empty lists; add a hook such as demtui_attacks() or remove the plugin.")
        return
    record.status = "partial" if record.problems else "ok"


def _strict() -> bool:
    return os.environ.get("DEMTUI_STRICT_PLUGINS", "") not in ("", "0")


_CACHE: dict[tuple, Registry] = {}


def get_registry(registry_file: str | Path | None = None, entry_points: bool = True) -> Registry:
    """Load (once per process and config) the registry the CLI, engine and TUI share."""
    config = load_config(registry_file)
    key = (config.fingerprint(), entry_points)
    if key not in _CACHE:
        _CACHE[key] = Registry(config).load(entry_points=entry_points)
    return _CACHE[key]


def describe_broken(registry: Registry) -> str:
    """One warning line for `list` and `run`, or '' when every plugin loaded cleanly."""
    broken = registry.broken()
    if not broken:
        return ""
    names = ", ".join(r.name for r in broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
    return (f"{len(broken)} plugin(s) did not load cleanly ({names}); run 'demtui plugins' for the reasons.")
