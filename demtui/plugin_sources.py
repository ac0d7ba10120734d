"""Where plugins come from: built-in modules, local modules or files, installed entry points.

Each source yields a :class:`PluginRecord` (what `demtui plugins` shows) and a loader; a
failure to load is worded for where the plugin came from (reinstall a distribution,
install a missing dependency, put a module next to a local file). Torch-free.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from demtui.components import Provider

ENTRY_POINT_GROUP = "demtui"


@dataclass
class PluginRecord:
    """What `demtui plugins` shows for one plugin."""

    name: str
    source: str  # builtin | local | entrypoint
    package: str = ""
    version: str = ""
    status: str = "ok"  # ok | failed | partial | empty | disabled
    problems: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)
    qualifier: str = ""
    entry_point: str = ""
    module: str = ""
    folder: str = ""
    traces: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def provider(self) -> Provider:
        return Provider(plugin=self.name, source=self.source, qualifier=self.qualifier or self.name,
                        distribution=self.package, version=self.version, entry_point=self.entry_point,
                        module=self.module, folder=self.folder)

    def problem(self, message: str, trace: str = "") -> None:
        self.problems.append(message)
        if trace:
            self.traces.append(trace)


def full_trace(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def where_raised(exc: BaseException) -> str:
    """`` (at file.py:12)``: the innermost frame of the plugin's own code (not demtui's core, pluggy or importlib)."""
    core = Path(__file__).resolve().parent
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<") and Path(f.filename).resolve().parent != core
              and "pluggy" not in Path(f.filename).parts and "importlib" not in Path(f.filename).parts]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" (at {exc.filename}:{exc.lineno})"
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def import_problem(record: PluginRecord, exc: BaseException) -> str:
    text = f"plugin '{record.name}' failed to import: {type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        return f"{text}; fix the syntax error."
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        own = record.module and (exc.name == record.module or record.module.startswith(exc.name + "."))
        if own and record.source == "entrypoint":
            return f"{text}; the installed distribution {record.package} lacks its own module: reinstall it."
        if not own and record.source == "local" and record.folder:
            return f"{text}{where_raised(exc)}; install '{exc.name}', or put it next to the plugin file in {record.folder}."
        if not own:
            return f"{text}{where_raised(exc)}; install '{exc.name}', which the plugin needs."
        return f"{text}; check the module name in registry.toml."
    return text + where_raised(exc) + "."


def entry_point_plugins() -> list[tuple[PluginRecord, Callable[[], Any]]]:
    """Every plugin entry point, sorted, with unique names (the same every time, whatever the install order)."""
    try:
        eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # broken metadata in the environment must not stop demtui
        return []

    def dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
        dist = getattr(ep, "dist", None)
        return (dist.name, dist.version) if dist is not None else ("", "")

    eps.sort(key=lambda ep: (dist_of(ep)[0].lower(), ep.name, ep.value))
    unique, out = {}, []
    for ep in eps:
        unique[ep.name] = unique.get(ep.name, 0) + 1
    seen: set[tuple[str, str, str]] = set()
    for ep in eps:
        package, version = dist_of(ep)
        key = (package.lower(), ep.name, ep.value)
        if key in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(key)
        clash = unique[ep.name] > 1
        name = f"{package}:{ep.name}" if clash and package else ep.name
        record = PluginRecord(name=name, source="entrypoint", package=package, version=version,
                              qualifier=package if clash and package else ep.name,
                              entry_point=f"{ep.name} = {ep.value}", module=ep.value.partition(":")[0])
        out.append((record, ep.load))
    return out


def local_record(ref: str) -> PluginRecord:
    if ref.endswith(".py"):
        path = Path(ref)
        return PluginRecord(name=ref, source="local", qualifier=path.stem, module=f"demtui_local_{path.stem}",
                            folder=str(path.parent))
    return PluginRecord(name=ref, source="local", qualifier=ref, module=ref)


def import_local(ref: str, base_dir: Path) -> ModuleType:
    """A local plugin is a module name or a path to a .py file (relative to its registry).

    A file's folder goes on ``sys.path`` (appended: it never shadows an installed package),
    so the file and its entry callables can import modules that sit next to it.
    """
    if not ref.endswith(".py"):
        return importlib.import_module(ref)
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise FileNotFoundError(f"no such file {path}")
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.append(folder)
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
