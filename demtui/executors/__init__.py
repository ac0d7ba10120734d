"""Executors: where runs execute. The interface lives in :mod:`demtui.executors.base`.

Built-ins (registered through the ``demtui_executors`` hook, like every component):
``inline`` (this process), ``local`` (processes with slots per device), ``ray`` and
``slurm`` (optional extras, imported only when chosen). :func:`make_executor` builds one
by name from its validated params.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demtui.executors.base import (
    ACTIVE,
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    SUBMITTED_SPEC,
    Executor,
    ExecutorError,
    RunHandle,
    last_words,
    log_tail,
)

if TYPE_CHECKING:
    from demtui.registry import Registry

__all__ = ["ACTIVE", "CANCELLED", "DONE", "FAILED", "FINISHED", "QUEUED", "RUNNING", "SUBMITTED_SPEC", "Executor",
           "ExecutorContext", "ExecutorError", "RunHandle", "last_words", "log_tail", "make_executor"]


@dataclass
class ExecutorContext:
    """What an executor factory may need besides its params."""

    root: Path  # the grid's (or run's) folder: where per-job scratch (e.g. submitit's folder) goes
    registry_file: str | None = None  # the --registry the driver uses, for workers to load the same one
    #: for in-process runs: handle → a context manager yielding that run's event listeners (progress views)
    listeners: Callable[[RunHandle], Any] | None = None
    env: dict[str, str] = field(default_factory=dict)  # environment workers should see


def make_executor(name: str, params: dict[str, Any], ctx: ExecutorContext, registry: "Registry") -> Executor:
    """Build executor ``name`` from validated ``params``; unknown names suggest the closest."""
    from demtui.blame import blame

    source = registry.get("executor", name)
    make = source.load()
    with blame(source, "starting the executor"):  # a third-party executor's crash names its plugin
        return make(dict(params), ctx)
