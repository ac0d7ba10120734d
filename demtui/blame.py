"""Blame: an exception raised by plugin code becomes one sentence that names the plugin.

Every call from the engine into a component's code (the lazy import of its ``entry``,
an attack's generate, a defense's apply and rebuild, a dataset's load, a model's build)
runs inside :func:`blame`. An exception escaping it becomes a :class:`PluginRunError`
naming the component, the plugin, its distribution and version and the entry callable,
with the plugin's own traceback kept in ``.trace`` (the engine writes it to the run's
log; ``--debug`` prints it). A third party's crash is a failed run (exit 3); a built-in's
crash is still a demtui bug (exit 1, "report it"), but names the component too.

Errors the plugin raised on purpose (``demtui.errors.*``: a bad parameter, missing
data) pass through unchanged, and so do cancellation and Ctrl-C. Torch-free: the
registry and the component records use it at load time.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from demtui.errors import DemtuiError, RunError


class PluginRunError(RunError):
    """Plugin code failed while a run used it; the message names the plugin and what to do.

    ``component`` is ``"kind 'name'"``, ``provider`` the plugin's record as a dict
    (plugin, source, distribution, version, entry_point), ``trace`` the plugin's traceback.
    """

    exit_code = 3

    def __init__(self, message: str, *, component: str = "", provider: dict[str, Any] | None = None,
                 action: str = "", trace: str = "", builtin: bool = False) -> None:
        super().__init__(message)
        self.component = component
        self.provider = dict(provider or {})
        self.action = action
        self.trace = trace
        self.builtin = builtin
        if builtin:
            self.exit_code = 1  # a built-in crashing is a bug in demtui itself


class BudgetError(PluginRunError):
    """An attack returned a perturbation outside its declared threat model."""


def _demtui_version() -> str:
    from demtui import __version__

    return __version__


def provider_of(component: Any) -> Any:
    return getattr(component, "provider", None)


def is_builtin(component: Any) -> bool:
    provider = provider_of(component)
    return provider is not None and provider.source == "builtin"


def describe(component: Any) -> str:
    """``attack 'x' from plugin 'p' (dist 1.0)``, or ``built-in attack 'x' (demtui 0.1.0)``."""
    kind, name = getattr(component, "kind", "component"), getattr(component, "name", "?")
    provider = provider_of(component)
    if provider is None:
        return f"{kind} '{name}' (not registered through a plugin)"
    if provider.source == "builtin":
        return f"built-in {kind} '{name}' (demtui {_demtui_version()})"
    return f"{kind} '{name}' from {provider.describe()}"


def format_trace(exc: BaseException, skip: int = 1) -> str:
    """The exception's traceback without the first ``skip`` frames (the engine's side of the boundary)."""
    tb: TracebackType | None = exc.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _first_line(exc: BaseException, limit: int = 240) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    line = line if len(line) <= limit else line[: limit - 1] + "…"
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def plugin_error(component: Any, action: str, exc: BaseException, *, hint: str = "", skip: int = 1,
                 cls: type[PluginRunError] = PluginRunError) -> PluginRunError:
    """The PluginRunError for ``exc`` raised by ``component``'s code while ``action``."""
    provider = provider_of(component)
    who = describe(component)
    entry = getattr(component, "entry", "")
    where = f" [{entry}]" if entry else ""
    builtin = is_builtin(component)
    if _out_of_memory(exc):
        message = (f"{who}{where} ran out of device memory while {action}; lower its batch_size (or the run's "
                   "run.batch_size), use a smaller model or a device with more memory.")
        builtin = False  # not a bug: the machine is too small for these settings
    elif builtin:
        message = (f"{who}{where} failed while {action}: {_first_line(exc)}; this is a bug in demtui: re-run "
                   "with --debug for the trace and report it.")
    else:
        fix = hint or "fix or update the plugin, or report it to its author; --debug prints its traceback"
        message = f"{who}{where} failed while {action}: {_first_line(exc)}; {fix}."
    return cls(message, component=f"{getattr(component, 'kind', '')} '{getattr(component, 'name', '')}'",
               provider=provider.as_dict() if provider is not None else None, action=action,
               trace=format_trace(exc, skip), builtin=builtin)


def passes_through(exc: BaseException) -> bool:
    """Errors that already say what to do, and cancellation, are never re-worded."""
    if isinstance(exc, (DemtuiError, KeyboardInterrupt, SystemExit, GeneratorExit)):
        return True
    context = sys.modules.get("demtui.context")  # Cancelled lives there (with torch); not loaded → not raised
    return context is not None and isinstance(exc, context.Cancelled)


@contextlib.contextmanager
def blame(component: Any, action: str, *, hint: str = "") -> Iterator[None]:
    """Run plugin code; an unexpected exception becomes a PluginRunError naming ``component``."""
    try:
        yield
    except Exception as exc:
        if passes_through(exc):
            raise
        raise plugin_error(component, action, exc, hint=hint) from exc


# -- the entry import ---------------------------------------------------------------------
def import_error(component: Any, exc: BaseException) -> PluginRunError:
    """Why ``component.entry`` cannot be imported, worded for where the plugin came from."""
    entry = getattr(component, "entry", "")
    module_name, _, attr = entry.partition(":")
    provider = provider_of(component)
    source = provider.source if provider is not None else ""
    action = f"importing its code {entry!r}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        own = exc.name == module_name or module_name.startswith(exc.name + ".")
        if own and source == "local" and provider.folder:
            hint = (f"no module '{exc.name}' is importable: put {exc.name.split('.')[0]}.py (or the package) in "
                    f"{provider.folder}, which demtui puts on sys.path for local plugins, or fix the entry")
        elif own and source == "local":
            hint = f"no module '{exc.name}' is importable from sys.path: fix the entry or make the module importable"
        elif own and source == "entrypoint":
            hint = (f"its module '{exc.name}' is missing from the installed distribution: reinstall "
                    f"{provider.distribution or provider.plugin} or fix the entry")
        elif own:
            hint = f"no module '{exc.name}' exists: fix the entry, which must be 'package.module:callable'"
        else:
            hint = f"it needs the module '{exc.name}', which is not installed here: install it"
        return plugin_error(component, action, exc, hint=hint)
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else "its code"
        return plugin_error(component, action, exc, hint=f"fix the syntax error at {where}")
    if isinstance(exc, AttributeError):
        return plugin_error(component, action, exc,
                            hint=f"module '{module_name}' has no '{attr}': fix the entry or define the callable")
    return plugin_error(component, action, exc)


# -- attribution by traceback (exceptions from code that runs later: a wrapper's forward) --
def _roots(component: Any) -> tuple[str, ...]:
    """Module-name prefixes of a component's code: its package (built-in) or top-level package."""
    module = getattr(component, "entry", "").partition(":")[0]
    if not module:
        return ()
    provider = provider_of(component)
    if provider is not None and provider.source == "builtin":
        return (module.rpartition(".")[0] or module,)
    roots = {module.split(".")[0]}
    if provider is not None and provider.module:
        roots.add(provider.module.split(".")[0])
    return tuple(sorted(roots))


def attribute(exc: BaseException, components: Iterable[Any], stage: str, prefer: Iterable[str] = ()) -> PluginRunError | None:
    """Blame an exception that escaped a stage on the component whose code was innermost, if any.

    Walks the traceback from the innermost frame out; the first frame inside a component's
    code decides. ``prefer`` breaks ties between components sharing a package (kinds, in
    order). None when no plugin code was on the stack (then it is demtui's own bug).
    """
    if passes_through(exc):
        return None
    candidates = [(c, _roots(c)) for c in components if c is not None]
    order = {kind: i for i, kind in enumerate(prefer)}
    frames = list(traceback.walk_tb(exc.__traceback__))
    for frame, _ in reversed(frames):
        module = frame.f_globals.get("__name__", "")
        hits = [c for c, roots in candidates if any(module == r or module.startswith(r + ".") for r in roots)]
        if not hits:
            continue
        exact = [c for c in hits if c.entry.partition(":")[0] == module]
        pool = exact or hits
        pool.sort(key=lambda c: order.get(c.kind, len(order)))
        where = f"{module}.{frame.f_code.co_name}"
        return plugin_error(pool[0], f"running stage '{stage}' (in {where})", exc, skip=0)
    return None
