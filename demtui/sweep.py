"""Parameter sweeps in one run: several budgets (the paper's Table 6) or any other knob.

A spec's ``[sweep]`` table maps ``section.param`` to a list of values; ``--sweep
attack.eps=4/255,8/255`` does the same from the command line. An axis may also be a
component (``defense.name=democratic,pgd-at,trades``): that is how the paper's attack ×
defense tables come out of one command. A swept component starts from its own defaults
and keeps only those of the base section's parameters it accepts. Every combination
becomes a normal run directory under the sweep's directory (so each can be resumed,
reported and opened in the TUI); :mod:`demtui.grid` runs them through an executor and
writes ``sweep.json`` and ``sweep.md`` with one row per combination. All combinations
are validated before anything runs.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Callable

from demtui.errors import SpecError
from demtui.spec import COMPONENT_SECTIONS, SECTIONS, merge

_AXIS = re.compile(r"^([a-z]+)\.([A-Za-z0-9_]+)$")


@dataclass
class Variant:
    label: str  # directory name, e.g. "attack.eps=8_255"
    values: dict[str, Any]  # "attack.eps" → value as given
    data: dict[str, Any]  # the full spec dict of this combination


def parse_sweep_flags(items: list[str]) -> dict[str, list[Any]]:
    """``section.param=v1,v2`` strings → the ``[sweep]`` table."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not vals:
            raise SpecError(f"--sweep {item!r} must look like section.param=v1,v2, e.g. attack.eps=4/255,8/255.")
        out[key.strip()] = vals
    return out


def split_executor(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the ``[executor]`` table (where runs execute, never part of what they compute)."""
    section = data.get("executor", {})
    if not isinstance(section, dict):
        raise SpecError("Spec section 'executor' must be a table, e.g. [executor] with name = \"local\".")
    return {k: v for k, v in data.items() if k != "executor"}, dict(section)


def split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Separate the ``[sweep]`` table from the rest of a spec dict and check its axes."""
    rest = {k: v for k, v in data.items() if k != "sweep"}
    axes = dict(data.get("sweep", {}))
    for key, values in axes.items():
        m = _AXIS.match(key)
        if not m or m.group(1) not in SECTIONS:
            raise SpecError(f"Sweep axis '{key}' must be section.param with a section among {', '.join(SECTIONS)}.")
        if m.group(2) == "name" and m.group(1) not in COMPONENT_SECTIONS:
            raise SpecError(f"Sweep axis '{key}' names no component; components are {', '.join(COMPONENT_SECTIONS)}.")
        if not isinstance(values, list) or not values:
            raise SpecError(f"Sweep axis '{key}' needs a non-empty list of values, e.g. [\"4/255\", \"8/255\"].")
    return rest, axes


def _label(values: dict[str, Any]) -> str:
    text = ",".join(f"{k}={v}" for k, v in values.items())
    return re.sub(r"[^A-Za-z0-9.=,_-]", "_", text)


#: (section, component name) → the parameter names that component accepts, or None if unknown.
Accepts = Callable[[str, str], "set[str] | None"]


def variants(base: dict[str, Any], axes: dict[str, list[Any]], accepts: Accepts | None = None) -> list[Variant]:
    """Every combination of the axes, in order, as full spec dicts.

    Where a combination swaps a component, the base section's parameters that the new
    component accepts (per ``accepts``) carry over; the rest are dropped, since they
    belong to the component being replaced.
    """
    keys = list(axes)
    out = []
    for combo in itertools.product(*(axes[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        over: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            section, _, param = key.partition(".")
            if section == "run" and param == "targets":
                raise SpecError("Sweeping run.targets is not supported; list all targets in one run instead.")
            over.setdefault(section, {})[param] = value
        for section, values_ in over.items():
            name = values_.get("name")
            current = base.get(section, {})
            if name is not None and name != current.get("name") and accepts is not None:
                known = accepts(section, str(name)) or set()
                over[section] = {**{k: v for k, v in current.items() if k in known}, **values_}
        out.append(Variant(_label(values), values, merge(base, over)))
    return out
