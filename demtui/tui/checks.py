"""Checks Compose makes as the user types, beyond what ``resolve`` can know without data.

Targets against the dataset's class names or count (from its registry metadata), and the
run name as a folder under the runs directory. Each returns one sentence, or '' when fine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from demtui.errors import did_you_mean


def check_targets(targets: Sequence[int | str], classes: Sequence[str], num_classes: int = 0,
                  dataset: str = "the dataset") -> str:
    """Every target must be a class index in range or one of the class names."""
    count = num_classes or len(classes)
    for t in targets:
        if isinstance(t, int):
            if t < 0 or (count and t >= count):
                top = f"0 to {count - 1}" if count else "0 or more"
                return f"Target {t} is not a class of {dataset}; use an index from {top}" + (
                    f" or a name ({', '.join(classes[:4])}, …)." if classes else ".")
        elif classes and t not in classes:
            hint = did_you_mean(str(t), list(classes))
            return (f"Target '{t}' is not a class of {dataset}.{hint} Use an index from 0 to {count - 1} "
                    f"or a name ({', '.join(classes[:4])}, …).")
        elif not classes and count:
            return f"Target '{t}' is a name, but {dataset} lists no class names here; use an index from 0 to {count - 1}."
    return ""


def check_run_name(name: str, runs_dir: Path) -> str:
    """A plain, new folder name under the runs directory ('' is fine: a name is made up)."""
    if not name:
        return ""
    if "/" in name or "\\" in name or name in (".", "..") or ".." in Path(name).parts:
        return f"Run name '{name}' must be a plain folder name, without '/', '\\\\' or '..'."
    if name.startswith("."):
        return f"Run name '{name}' must not start with '.' (it would be hidden)."
    target = runs_dir / name
    try:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            return f"{target} already exists; choose another run name."
    except OSError:
        pass
    return ""


def dataset_classes(registry: Any, name: str) -> tuple[tuple[str, ...], int]:
    """(class names, class count) from the dataset's metadata; ((), 0) when unknown."""
    try:
        comp = registry.get("dataset", name)
    except Exception:  # an unknown name is resolve's message to give, not ours
        return (), 0
    classes = tuple(str(c) for c in getattr(comp, "classes", ()) or ())
    return classes, int(getattr(comp, "num_classes", 0) or len(classes))
