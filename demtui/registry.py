"""The plugin manager: loads registry.toml modules, then entry points, never fatally.

Rules (learned from conda, llm and harlequin): each plugin loads on its own inside
try/except and a failure is recorded with its reason; the registry, not the plugin,
enforces unique component names and says which plugin gave each clashing name; a hook
implementation with a misspelled name is reported instead of silently ignored.
Set ``DEMTUI_STRICT_PLUGINS=1`` to make any problem fatal, ``DEMTUI_NO_PLUGINS=1`` to
skip third-party entry points.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from demtui import hookspecs
from demtui.components import KINDS, Component, LayerMap, ModelSource
from demtui.config import RegistryConfig, load_config
from demtui.errors import DemtuiError, PluginError, UnknownComponentError, did_you_mean

ENTRY_POINT_GROUP = "demtui"


@dataclass
class PluginRecord:
    """What `demtui plugins` shows for one plugin."""

    name: str
    source: str  # builtin | local | entrypoint
    package: str = ""
    version: str = ""
    status: str = "ok"  # ok | failed | partial | disabled
    problems: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Registry:
    """Every loaded component, by kind and name, plus the record of each plugin."""

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginRecord] = []
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._owner: dict[tuple[str, str], str] = {}
        self._observer_errors: set[str] = set()

    # -- loading ---------------------------------------------------------------------
    def load(self, entry_points: bool = True) -> "Registry":
        for module_name in self.config.modules:
            self._load_one(module_name, "builtin", lambda m=module_name: importlib.import_module(m))
        for ref in self.config.local:
            self._load_one(ref, "local", lambda r=ref: _import_local(r, self.config.base_dir))
        if entry_points and os.environ.get("DEMTUI_NO_PLUGINS", "") in ("", "0"):
            for ep in _entry_points():
                dist = getattr(ep, "dist", None)
                self._load_one(
                    ep.name, "entrypoint", ep.load,
                    package=dist.name if dist else "", version=dist.version if dist else "",
                )
        self._collect()
        if _strict() and self.broken():
            raise PluginError(self.broken()[0].problems[0])
        return self

    def _load_one(self, name: str, source: str, loader, package: str = "", version: str = "") -> None:
        record = PluginRecord(name=name, source=source, package=package, version=version)
        self.plugins.append(record)
        if name in self.config.disable:
            record.status = "disabled"
            return
        try:
            plugin = loader()
        except Exception as exc:  # a broken plugin must never break the rest
            record.status = "failed"
            record.problems.append(f"plugin '{name}' failed to import: {type(exc).__name__}: {exc}")
            return
        api = getattr(plugin, "DEMTUI_API", hookspecs.API_VERSION)
        if api != hookspecs.API_VERSION:
            record.status = "failed"
            record.problems.append(
                f"plugin '{name}' targets demtui plugin API {api} but this demtui provides "
                f"API {hookspecs.API_VERSION}; install a version of the plugin made for it."
            )
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            record.status = "failed"
            record.problems.append(f"plugin '{name}' could not be registered: {exc}")
            return
        self._check_hook_names(plugin, record)

    def _check_hook_names(self, plugin: Any, record: PluginRecord) -> None:
        known = [n for n in dir(hookspecs) if n.startswith("demtui_")]
        for impl in self.pm.get_hookcallers(plugin) or []:
            if not impl.has_spec():
                record.status = "partial"
                record.problems.append(
                    f"plugin '{record.name}' implements unknown hook '{impl.name}'."
                    + did_you_mean(impl.name, known)
                )

    def _collect(self) -> None:
        by_name = {r.name: r for r in self.plugins}
        for hook_name, kind in hookspecs.COMPONENT_HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                record = by_name[impl.plugin_name]
                try:
                    items = impl.function()
                except Exception as exc:
                    record.status = "partial"
                    record.problems.append(f"plugin '{record.name}' hook {hook_name} raised {type(exc).__name__}: {exc}")
                    continue
                self._add_items(items, kind, hook_name, record)

    def _add_items(self, items: Any, kind: str, hook_name: str, record: PluginRecord) -> None:
        expected = KINDS[kind]
        if items is None:
            return
        if not isinstance(items, (list, tuple)):
            items = [items] if isinstance(items, Component) else items
        if not isinstance(items, (list, tuple)):
            record.status = "partial"
            record.problems.append(
                f"plugin '{record.name}' hook {hook_name} returned {type(items).__name__}; "
                f"return a list of {expected.__name__} records."
            )
            return
        for item in items:
            if not isinstance(item, expected):
                record.status = "partial"
                record.problems.append(
                    f"plugin '{record.name}' hook {hook_name} returned a {type(item).__name__}; "
                    f"it must return {expected.__name__} records from demtui.components."
                )
                continue
            owner = self._owner.get((kind, item.name))
            if owner is not None:
                record.status = "partial"
                record.problems.append(
                    f"plugin '{record.name}' registers {kind} '{item.name}', which plugin "
                    f"'{owner}' already provides; rename it in '{record.name}'."
                )
                continue
            item = self._apply_defaults(item, record)
            self.components[kind][item.name] = item
            self._owner[(kind, item.name)] = record.name
            record.provides.append(f"{kind}:{item.name}")

    def _apply_defaults(self, item: Component, record: PluginRecord) -> Component:
        overrides = self.config.defaults.get(item.kind, {}).get(item.name)
        if not overrides:
            return item
        from dataclasses import replace

        try:
            return replace(item, params=item.params.with_defaults(overrides, owner=item.name))
        except DemtuiError as exc:
            record.problems.append(f"registry.toml defaults for {item.kind} '{item.name}': {exc}")
            record.status = "partial"
        return item

    # -- queries ---------------------------------------------------------------------
    def broken(self) -> list[PluginRecord]:
        return [r for r in self.plugins if r.status in ("failed", "partial")]

    def owner(self, kind: str, name: str) -> str:
        return self._owner.get((kind, name), "")

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def list(self, kind: str, pattern: str = "*") -> list[Component]:
        return [c for n, c in sorted(self.components[kind].items()) if fnmatch.fnmatch(n, pattern)]

    def get(self, kind: str, name: str) -> Component:
        """The component of ``kind`` called ``name``; a near miss suggests the closest."""
        found = self.components[kind].get(name)
        if found is None:
            raise UnknownComponentError(
                f"Unknown {kind} '{name}'." + did_you_mean(name, self.components[kind])
                + f" Run 'demtui list {_plural(kind)}' to see them all."
            )
        return found

    def model_source(self, ref: str) -> tuple[ModelSource, str | None]:
        """Resolve ``torchvision:resnet50`` or ``smallcnn`` to (source, arch)."""
        prefix, sep, arch = ref.partition(":")
        source = self.get("model", prefix)
        assert isinstance(source, ModelSource)
        if sep and not source.family:
            raise UnknownComponentError(f"Model '{prefix}' takes no architecture; write just '{prefix}'.")
        if source.family and not arch:
            example = source.examples[0] if source.examples else f"{prefix}:NAME"
            raise UnknownComponentError(f"Model '{prefix}' needs an architecture, e.g. '{example}'.")
        return source, (arch or None)

    def layer_map(self, model_ref: str) -> LayerMap | None:
        """The first layer map whose patterns match the model reference, if any."""
        return next((m for m in self.components["layers"].values() if m.applies_to(model_ref)), None)

    def find(self, name: str) -> list[Component]:
        """Every component called ``name`` (for `demtui show`)."""
        return [by_name[name] for by_name in self.components.values() if name in by_name]

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
    return {"layers": "layers", "model": "models", "dataset": "datasets", "attack": "attacks", "defense": "defenses",
            "executor": "executors"}[kind]


def _strict() -> bool:
    return os.environ.get("DEMTUI_STRICT_PLUGINS", "") not in ("", "0")


def _entry_points() -> Iterable[metadata.EntryPoint]:
    try:
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # broken metadata in the environment must not stop demtui
        return []


def _import_local(ref: str, base_dir: Path) -> ModuleType:
    """A local plugin is a module name or a path to a .py file (relative to its registry)."""
    if not ref.endswith(".py"):
        return importlib.import_module(ref)
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise FileNotFoundError(f"no such file {path}")
    mod_name = f"demtui_local_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


_CACHE: dict[tuple, Registry] = {}


def get_registry(registry_file: str | Path | None = None, entry_points: bool = True) -> Registry:
    """Load (once per process and config) the registry the CLI, engine and TUI share."""
    config = load_config(registry_file)
    key = (config.fingerprint(), entry_points)
    if key not in _CACHE:
        _CACHE[key] = Registry(config).load(entry_points=entry_points)
    return _CACHE[key]
