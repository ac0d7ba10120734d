"""Strict JSON for every file and document demtui writes.

Python's json writes ``NaN`` and ``Infinity``, which JavaScript and most strict parsers
reject. Every writer goes through :func:`dumps`: a non-finite number becomes ``null`` and
the document's top-level ``nonfinite`` list names where it was (``"stages.attack.loss"``),
so nothing is silently lost and every file parses everywhere. No torch here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

NONFINITE_KEY = "nonfinite"


def clean(obj: Any, default: Callable[[Any], Any] | None = None) -> tuple[Any, list[str]]:
    """A copy of ``obj`` with non-finite floats as None, and the dotted paths where they were."""
    found: list[str] = []
    return _clean(obj, "", found, default), found


def _clean(obj: Any, path: str, found: list[str], default: Callable[[Any], Any] | None) -> Any:
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        found.append(path or "(document)")
        return None
    if isinstance(obj, dict):
        return {k: _clean(v, f"{path}.{k}" if path else str(k), found, default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v, f"{path}[{i}]", found, default) for i, v in enumerate(obj)]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return _clean(obj.item(), path, found, default)
        except (TypeError, ValueError):
            pass
    if default is not None:
        return _clean(default(obj), path, found, None)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, *, default: Callable[[Any], Any] | None = None, flag: bool = True, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN/Infinity; a dict gets ``nonfinite`` listing what was nulled."""
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k != NONFINITE_KEY}  # recomputed on every write
    data, found = clean(obj, default)
    if found and flag and isinstance(data, dict):
        data[NONFINITE_KEY] = found
    return json.dumps(data, allow_nan=False, **kwargs)


def _refuse(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token}")


def loads_strict(text: str | bytes) -> Any:
    """Parse like a strict (JavaScript) parser: NaN, Infinity and -Infinity are errors."""
    return json.loads(text, parse_constant=_refuse)
