"""Observers: mirror runs into experiment trackers without touching the runs.

An observer is a plugin component (hook ``demtui_observers``, record
:class:`demtui.components.ObserverSource`) enabled per run with ``--observer NAME``,
``run.observers = [...]`` and an ``[observer.NAME]`` table of params. Its entry,
``make(params, ctx) -> Observer``, must be cheap (import the tracker on the first event);
the object gets every event with ``on_event(event)`` on the hub's thread and, when the run
ends, ``close(status)`` (``finished``/``failed``/``cancelled``). The run's own files stay
the source of truth: an observer is a copy, never a dependency. docs/observers.md.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from demtui.errors import SpecError

if TYPE_CHECKING:
    from demtui.observers.hub import ObserverHub
    from demtui.registry import Registry
    from demtui.spec import RunSpec

GRID_MANIFEST = "sweep.json"


class Observer(Protocol):
    def on_event(self, event: dict[str, Any]) -> None: ...


@dataclass
class ObserverContext:
    """What an observer factory gets besides its params."""

    run_dir: Path
    name: str
    #: one sentence for the run's log (a warning); safe from any thread
    warn: Callable[[str], None] = field(default=lambda message: None)

    @property
    def grid_dir(self) -> Path | None:
        """The grid folder when this run is a cell of a sweep or reproduction (for nested tracker runs)."""
        parent = self.run_dir.resolve().parent
        return parent if (parent / GRID_MANIFEST).exists() else None


def install_hint(name: str, extra: str) -> str:
    return (f"install it with 'uv sync --extra {extra}' (or pip install 'demtui[{extra}]'), "
            f"or run without --observer {name}")


def check(spec: "RunSpec", registry: "Registry") -> None:
    """Every enabled observer's extra is installed (found, not imported) before a run writes anything."""
    for choice in getattr(spec, "observers", []):
        source = registry.get("observer", choice.name)
        for module in getattr(source, "needs", ()):
            if importlib.util.find_spec(module) is None:
                extra = getattr(source, "extra", "") or module
                raise SpecError(f"Observer '{choice.name}' needs the '{extra}' extra ({module} is not installed); "
                                + install_hint(choice.name, extra) + ".")


def start_hub(spec: "RunSpec", registry: "Registry", run_dir: Path, bus: Any) -> "ObserverHub | None":
    """Build the run's observers (and the ``demtui_run_event`` hooks) behind one hub; None when there are none."""
    from demtui.observers.hub import ObserverHub

    observers: dict[str, Any] = {}
    hooks = registry.pm.hook.demtui_run_event.get_hookimpls()
    if hooks:
        observers["demtui_run_event hooks"] = _Hooks(registry)
    choices = list(getattr(spec, "observers", []))
    if not choices and not observers:
        return None
    hub = ObserverHub(observers)
    for choice in choices:
        ctx = ObserverContext(run_dir=Path(run_dir), name=choice.name,
                              warn=lambda m, n=choice.name: hub.note(f"observer '{n}': {m}"))
        try:
            make = registry.get("observer", choice.name).load()
            hub.observers[choice.name] = make(dict(choice.params), ctx)
        except Exception as exc:  # noqa: BLE001 - a broken observer never stops the run
            first = ((str(exc).strip().splitlines() or [""])[0]).rstrip(".") or type(exc).__name__
            hub.note(f"observer '{choice.name}' could not start ({first}); the run goes on without it")
    return hub.attach(bus)


class _Hooks:
    """The plugins' ``demtui_run_event`` hooks, called from the hub's thread (each reported once on failure)."""

    def __init__(self, registry: "Registry") -> None:
        self.registry = registry

    def on_event(self, event: dict[str, Any]) -> None:
        self.registry.emit(event)
