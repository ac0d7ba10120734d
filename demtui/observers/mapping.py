"""One mapping from run events to tracker records, shared by every tracker.

TensorBoard, MLflow and W&B all get the same tags, so a curve is called the same in
each: ``attack/loss`` and ``defend/loss`` (progress info, one continuous step axis per
stage even when an attack restarts for each target), ``sr/before/target_3`` and
``aacc/after/target_3`` (per-target results; before = the attack stage, after =
evaluate, secondary = the fresh attack on the defended model), ``entropy/<role>/<source>``
histograms (step 0 before the defense, 1 after), ``uap/<file stem>`` images and
``final/<key>`` for the run's summary. Plain Python: no tracker imported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WHEN = {"attack": "before", "evaluate": "after", "secondary": "secondary"}
ENTROPY_STEP = {"before": 0, "after": 1}


@dataclass
class Scalar:
    tag: str
    value: float
    step: int


@dataclass
class Histogram:
    tag: str
    edges: list[float]  # bins + 1 increasing edges
    counts: list[int]
    mean: float
    step: int

    @property
    def num(self) -> int:
        return int(sum(self.counts))

    def sums(self) -> tuple[float, float]:
        """(sum, sum of squares), from the exact mean and the bin centres."""
        centres = [(a + b) / 2 for a, b in zip(self.edges, self.edges[1:])]
        return self.mean * self.num, sum(c * x * x for c, x in zip(self.counts, centres))


@dataclass
class Image:
    tag: str
    path: Path
    step: int = 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """A nested spec as ``section.param`` → scalar (lists joined with commas): what trackers call params."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        elif value is None:
            out[name] = ""
        elif isinstance(value, (str, int, float, bool)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


@dataclass
class Mapper:
    """Feeds on events in order; returns the records each one maps to."""

    run_dir: Path
    spec: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    _offset: dict[str, int] = field(default_factory=dict)
    _last: dict[str, int] = field(default_factory=dict)
    _restart: set[str] = field(default_factory=set)

    def params(self) -> dict[str, str | int | float | bool]:
        return flatten(self.spec)

    def final(self) -> dict[str, float]:
        pairs = ((key, _number(raw)) for key, raw in self.summary.items())
        return {f"final/{key}": x for key, x in pairs if x is not None}

    def feed(self, event: dict[str, Any]) -> list[Scalar | Histogram | Image]:
        kind = event.get("type")
        if kind == "run_started":
            self.spec = dict(event.get("spec") or {})
            return []
        if kind == "progress":
            return self._progress(event)
        if kind == "result":
            self._restart.add(str(event.get("phase")))  # the next progress of this stage is the next target's
            when = WHEN.get(str(event.get("phase")), str(event.get("phase")))
            target = event.get("target")
            suffix = f"/target_{target}" if target not in (None, "") else ""
            return [Scalar(f"{name}/{when}{suffix}", x, 0) for name, raw in (event.get("metrics") or {}).items()
                    if (x := _number(raw)) is not None]
        if kind == "entropy":
            return self._entropy(event)
        if kind == "artifact" and event.get("kind") == "uap":
            path = self.run_dir / str(event.get("path", ""))
            preview = path.with_suffix(".png")
            return [Image(f"uap/{path.stem}", preview)] if preview.exists() else []
        if kind == "stage_finished":
            stage = event.get("stage")
            out = [Scalar(f"{stage}/seconds", v, 0)] if (v := _number(event.get("seconds"))) is not None else []
            return out
        if kind == "run_finished":
            self.summary = dict(event.get("summary") or {})
            return [Scalar(tag, v, 0) for tag, v in self.final().items()]
        return []

    def _progress(self, event: dict[str, Any]) -> list[Scalar]:
        stage = str(event.get("stage"))
        done = int(event.get("done") or 0)
        if done < self._last.get(stage, 0) or stage in self._restart:  # a new target restarts the count: go on
            self._offset[stage] = self._offset.get(stage, 0) + self._last.get(stage, 0)
            self._restart.discard(stage)
        self._last[stage] = done
        step = self._offset.get(stage, 0) + done
        return [Scalar(f"{stage}/{key}", x, step) for key, raw in (event.get("info") or {}).items()
                if (x := _number(raw)) is not None]

    def _entropy(self, event: dict[str, Any]) -> list[Histogram]:
        counts = [int(c) for c in event.get("counts") or []]
        lo, hi, mean = _number(event.get("lo")), _number(event.get("hi")), _number(event.get("mean"))
        if not counts or lo is None or hi is None or mean is None:
            return []
        width = (hi - lo) / len(counts) if hi > lo else 1e-12
        edges = [lo + i * width for i in range(len(counts) + 1)]
        target = event.get("target")
        tag = f"entropy/{event.get('role')}/{event.get('source')}" + (f"/target_{target}" if target is not None else "")
        return [Histogram(tag, edges, counts, mean, ENTROPY_STEP.get(str(event.get("phase")), 0))]
