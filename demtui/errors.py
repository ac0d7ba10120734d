"""One exception family per concern, each carrying a sentence a user can act on.

The CLI and the TUI print ``str(error)`` and exit non-zero; ``--debug`` shows the trace.
Raise these for anything a user can fix (bad names, params, paths, devices); let
programming errors surface as ordinary exceptions.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DemtuiError(Exception):
    """Base class: the message is one clear sentence saying what was wrong and what to do."""

    exit_code = 2


class SpecError(DemtuiError):
    """A run spec, CLI flag or parameter value is invalid."""


class ParamError(SpecError):
    """A component parameter is unknown, mistyped or out of range."""


class PluginError(DemtuiError):
    """A plugin could not be loaded, or gave something the registry cannot accept."""


class UnknownComponentError(SpecError):
    """A component name matched nothing in the registry."""


class DataError(DemtuiError):
    """A dataset is missing, unreadable or does not fit the run."""


class ModelError(DemtuiError):
    """A model cannot be built, or a checkpoint does not fit it."""


class DeviceError(DemtuiError):
    """The requested device does not exist on this machine."""


class RunError(DemtuiError):
    """A run directory is unusable (corrupt events, foreign spec) or a stage failed."""

    exit_code = 3


class CollapseError(RunError):
    """A training stage destroyed the model (e.g. every input mapped to one class)."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, for 'did you mean ...?' hints."""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[hits[0]] if hits else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean X?' suffix, or '' when nothing is close."""
    hit = closest(name, candidates)
    return f" Did you mean '{hit}'?" if hit else ""
