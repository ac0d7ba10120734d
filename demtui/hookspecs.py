"""The entire plugin contract, hook by hook.

A plugin is any module (or object) with functions marked ``@hookimpl`` whose names match
these specs. Built-ins in ``demtui.plugins`` register through exactly these hooks.

Component hooks take no arguments and return a list of records from
``demtui.components``. They are called once per plugin when the registry loads, so they
must be cheap and must not import torch: put heavy code behind each record's ``entry``.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "demtui"
#: Bumped on any incompatible change to these hooks or the component records.
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
def demtui_run_event(event: dict[str, Any]) -> None:
    """Observe a run: called in the run's process for every event it emits.

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
}
