"""The entire plugin contract, hook by hook.

A plugin is any module (or object) with functions marked ``@hookimpl`` (import it from
``demtui.api``, or from here) whose names match these specs; an unmarked ``demtui_*``
function is reported, never silently ignored. Built-ins in ``demtui.plugins`` register
through exactly these hooks.

Component hooks take no arguments and return a list of records from
``demtui.components`` (re-exported by ``demtui.api``). They are called once per plugin
when the registry loads, so they must be cheap and must not import torch (``demtui
plugins --check`` verifies it in a fresh interpreter): put heavy code behind each
record's ``entry``. Each record is checked on its own: a broken one is reported by name
and the plugin's other records still load.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "demtui"
#: Bumped only on an incompatible change to these hooks, the component records or the names
#: of demtui.api (adding a hook, a record field with a default or an API name is not breaking).
#: A plugin may declare ``DEMTUI_API = N`` at module level; a mismatch is reported.
API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def demtui_models() -> list[Any]:
    """Model sources (:class:`demtui.components.ModelSource`).

    :return: records; a ``family`` source answers ``family:arch`` references.
    """


@hookspec
def demtui_datasets() -> list[Any]:
    """Dataset sources (:class:`demtui.components.DatasetSource`)."""


@hookspec
def demtui_entropy_layers() -> list[Any]:
    """Named entropy layers per architecture family (:class:`demtui.components.LayerMap`)."""


@hookspec
def demtui_attacks() -> list[Any]:
    """UAP attacks (:class:`demtui.components.Attack`)."""


@hookspec
def demtui_defenses() -> list[Any]:
    """Defenses (:class:`demtui.components.Defense`)."""


@hookspec
def demtui_executors() -> list[Any]:
    """Places to run runs (:class:`demtui.components.ExecutorSource`): ``--executor NAME``.

    The record's entry builds the executor: ``make(params, ctx) -> Executor`` (see
    :mod:`demtui.executors.base` for the interface: submit, poll, cancel, active, shutdown).
    """


@hookspec
def demtui_observers() -> list[Any]:
    """Experiment-tracker observers (:class:`demtui.components.ObserverSource`): ``--observer NAME``.

    The record's entry builds the observer: ``make(params, ctx) -> Observer`` (see
    :mod:`demtui.observers`). Observers run on a thread of their own and receive every
    event of the runs that enable them; one that raises is reported once and detached.
    """


@hookspec
def demtui_run_event(event: dict[str, Any]) -> None:
    """Observe a run: called in the run's process, on its observer thread, for every event it emits.

    :param event: the JSON-ready event dict exactly as written to ``events.jsonl``
        (see docs/events.md). Observers must not raise; a raising observer is
        reported once in the run's log and then ignored.
    """


#: hook name → component kind it returns
COMPONENT_HOOKS = {
    "demtui_models": "model",
    "demtui_datasets": "dataset",
    "demtui_entropy_layers": "layers",
    "demtui_attacks": "attack",
    "demtui_defenses": "defense",
    "demtui_executors": "executor",
    "demtui_observers": "observer",
}
