"""RunView: what the Watch screen shows about one run, folded from its events.

Plain Python (no Textual, no torch), so it is unit-tested on its own and the UI thread
only folds batches of already-parsed events into it. Every field comes from the event
contract in docs/events.md; anything unexpected in a line is counted, never raised.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from demtui.events import SCHEMA_VERSION

TERMINAL = {"run_finished": "finished", "run_failed": "failed", "run_cancelled": "cancelled"}
MAX_LOSS_POINTS = 2000
MAX_LOG_LINES = 500


@dataclass
class StageState:
    name: str
    status: str = "pending"  # pending | running | finished | skipped | failed | cancelled
    done: int = 0
    total: int = 0
    units_done: int = 0  # targets finished inside attack/secondary
    started: float | None = None
    last: float | None = None
    seconds: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class RoleHistogram:
    """The Eq. 5 entropy histograms of one layer role in one phase (shared lo/hi)."""

    layer: str = ""
    lo: float = 0.0
    hi: float = 1.0
    bins: int = 0
    clean: list[int] | None = None
    clean_mean: float | None = None
    perturbed: dict[str, list[int]] = field(default_factory=dict)
    perturbed_mean: dict[str, float] = field(default_factory=dict)
    uap: dict[str, list[int]] = field(default_factory=dict)
    uap_mean: dict[str, float] = field(default_factory=dict)


class RunView:
    """Folds events into the state the Watch screen renders; ``version`` counts changes."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.status = "waiting"  # waiting | running | finished | failed | cancelled
        self.spec: dict[str, Any] = {}
        self.device = ""
        self.pid: int | None = None  # the run's process and host (run_started), to stop it from here
        self.host: str | None = None
        self.stage_order: list[str] = []
        self.stages: dict[str, StageState] = {}
        self.current = ""
        self.histograms: dict[tuple[str, str], RoleHistogram] = {}
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self.losses: dict[str, list[float]] = {}
        self.logs: deque[tuple[str, str]] = deque(maxlen=MAX_LOG_LINES)
        self.log_total = 0
        self.summary: dict[str, Any] | None = None
        self.error = ""
        self.classes: list[str] = []
        self.bad_lines = 0
        self.skipped_events = 0
        self.newer_schema = False
        self.invocations = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.version = 0

    # -- folding -------------------------------------------------------------------------
    def apply(self, events: list[dict[str, Any]], bad_lines: int | None = None) -> bool:
        """Fold a batch; returns whether anything changed. Malformed events are counted."""
        changed = False
        for event in events:
            try:
                changed |= self._apply_one(event)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                self.skipped_events += 1
                changed = True
        if bad_lines is not None and bad_lines != self.bad_lines:
            self.bad_lines = bad_lines
            changed = True
        if changed:
            self.version += 1
        return changed

    def _apply_one(self, e: dict[str, Any]) -> bool:
        kind = e["type"]
        if int(e.get("v", SCHEMA_VERSION)) > SCHEMA_VERSION:
            self.newer_schema = True
        t = e.get("time")
        if isinstance(t, (int, float)):
            self.first_time = t if self.first_time is None else self.first_time
            self.last_time = t
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return False  # unknown types are ignored by contract
        handler(e, t if isinstance(t, (int, float)) else None)
        return True

    def _stage(self, name: str) -> StageState:
        if name not in self.stages:
            self.stages[name] = StageState(name)
            if name not in self.stage_order:
                self.stage_order.append(name)
        return self.stages[name]

    def _on_run_started(self, e: dict[str, Any], t: float | None) -> None:
        self.invocations += 1
        self.status, self.error, self.summary = "running", "", None
        self.spec = dict(e["spec"]) if isinstance(e.get("spec"), dict) else self.spec
        self.device = str(e.get("device", ""))
        pid = e.get("pid")
        self.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
        self.host = str(e["host"]) if e.get("host") else None
        for name in e.get("stages") or []:
            self._stage(str(name))

    def _on_stage_started(self, e: dict[str, Any], t: float | None) -> None:
        st = self._stage(e["stage"])
        st.status, st.started, st.last, st.done, st.total, st.units_done = "running", t, t, 0, 0, 0
        self.current = st.name
        self.status = "running" if self.status == "waiting" else self.status

    def _on_stage_skipped(self, e: dict[str, Any], t: float | None) -> None:
        st = self._stage(e["stage"])
        if st.status != "finished":
            st.status = "skipped"

    def _on_progress(self, e: dict[str, Any], t: float | None) -> None:
        st = self._stage(e["stage"])
        st.done, st.total, st.last = int(e["done"]), int(e["total"]), t
        info = e.get("info") or {}
        st.info = dict(info)
        loss = info.get("loss")
        if isinstance(loss, (int, float)) and loss == loss:
            series = self.losses.setdefault(st.name, [])
            series.append(float(loss))
            if len(series) > MAX_LOSS_POINTS:
                del series[::2]  # keep the shape, halve the points

    def _on_stage_finished(self, e: dict[str, Any], t: float | None) -> None:
        st = self._stage(e["stage"])
        st.status, st.last = "finished", t
        st.seconds = e.get("seconds")
        st.summary = dict(e.get("summary") or {})
        if isinstance(st.summary.get("classes"), list):
            self.classes = [str(c) for c in st.summary["classes"]]

    def _on_entropy(self, e: dict[str, Any], t: float | None) -> None:
        counts = [int(c) for c in e["counts"]]
        h = self.histograms.setdefault((str(e["phase"]), str(e["role"])), RoleHistogram())
        h.layer, h.lo, h.hi, h.bins = str(e["layer"]), float(e["lo"]), float(e["hi"]), len(counts)
        source, target, mean = e["source"], str(e.get("target")), e.get("mean")
        if source == "clean":
            h.clean, h.clean_mean = counts, mean
        elif source == "perturbed":
            h.perturbed[target], h.perturbed_mean[target] = counts, mean
        elif source == "uap":
            h.uap[target], h.uap_mean[target] = counts, mean

    def _on_result(self, e: dict[str, Any], t: float | None) -> None:
        phase, target = str(e["phase"]), str(e["target"])
        self.results.setdefault(target, {})[phase] = dict(e["metrics"])
        st = self.stages.get(phase)
        if st is not None and st.status == "running":
            st.units_done += 1
            st.done = st.total = 0

    def _on_log(self, e: dict[str, Any], t: float | None) -> None:
        self.logs.append((str(e.get("level", "info")), str(e["message"])))
        self.log_total += 1

    def _on_run_finished(self, e: dict[str, Any], t: float | None) -> None:
        self.status = "finished"
        self.summary = dict(e.get("summary") or {})

    def _on_run_failed(self, e: dict[str, Any], t: float | None) -> None:
        self.status, self.error = "failed", f"stage {e.get('stage')}: {e.get('error')}"
        self._close_running("failed")

    def _on_run_cancelled(self, e: dict[str, Any], t: float | None) -> None:
        self.status = "cancelled"
        self.error = f"cancelled during {e.get('stage')}; finished stages are kept"
        self._close_running("cancelled")

    def _close_running(self, status: str) -> None:
        for st in self.stages.values():
            if st.status == "running":
                st.status = status

    def mark_process_exit(self, status: str, message: str) -> None:
        """The run's process ended without a terminal event (killed, crashed, bad input)."""
        if self.status in ("finished", "failed", "cancelled"):
            return
        self.status, self.error = status, message
        self._close_running(status)
        self.version += 1

    # -- derived values ------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return str(self.spec.get("run", {}).get("mode", "targeted"))

    @property
    def metric(self) -> str:
        return "sr" if self.mode == "targeted" else "fooling_rate"

    def target_keys(self) -> list[str]:
        targets = [str(t) for t in self.spec.get("run", {}).get("targets", [])]
        return targets or (["untargeted"] if self.spec else [])

    def fraction(self, st: StageState) -> float | None:
        """Share of a stage done; attack/secondary count finished targets too."""
        if st.status in ("finished", "skipped"):
            return 1.0
        part = st.done / st.total if st.total else 0.0
        if st.name in ("attack", "secondary"):
            units = max(1, len(self.target_keys()))
            return min(1.0, (st.units_done + part) / units)
        return part if st.total else None

    def eta(self, st: StageState, now: float | None = None) -> float | None:
        """Seconds left in a running stage, from its pace so far (None when unknown)."""
        f = self.fraction(st)
        end = now if now is not None else st.last
        if st.status != "running" or not f or st.started is None or end is None:
            return None
        elapsed = max(0.0, end - st.started)
        return max(0.0, elapsed * (1 - f) / f)

    def overall(self) -> tuple[int, int]:
        done = sum(1 for s in self.stages.values() if s.status in ("finished", "skipped"))
        return done, len(self.stage_order)

    def label(self, target: str) -> str:
        if target.isdigit() and int(target) < len(self.classes):
            return f"{target} ({self.classes[int(target)]})"
        return target

    def live_summary(self) -> dict[str, Any]:
        """The headline numbers known so far (the run's own summary once it finished)."""
        if self.summary:
            return self.summary
        m = self.metric

        def mean(phase: str, key: str) -> float | None:
            vals = [r[phase].get(key) for r in self.results.values() if phase in r]
            vals = [v for v in vals if isinstance(v, (int, float))]
            return sum(vals) / len(vals) if vals else None

        base = self.stages.get("baseline")
        ev = self.stages.get("evaluate")
        cb = base.summary.get("cacc") if base else None
        ca = ev.summary.get("cacc") if ev else None
        return {
            "mode": self.mode, "cacc_before": cb, "cacc_after": ca,
            "sr_before": mean("attack", m), "sr_after": mean("evaluate", m),
            "aacc_before": mean("attack", "aacc"), "aacc_after": mean("evaluate", "aacc"),
            "delta_cacc": (ca - cb) if isinstance(ca, float) and isinstance(cb, float) else None,
            "secondary_sr": mean("secondary", m),
            "entropy_gap_before": (self.stages.get("analyse") or StageState("")).summary.get("repair_gap"),
        }

    def target_rows(self) -> list[tuple[str, ...]]:
        """(target, SR before, SR after, AAcc before, AAcc after, SR secondary), as in report.md."""
        keys = list(dict.fromkeys(self.target_keys() + list(self.results)))
        m = self.metric
        rows = []
        for key in keys:
            r = self.results.get(key, {})
            cells = [r.get(p, {}).get(k) for p, k in
                     (("attack", m), ("evaluate", m), ("attack", "aacc"), ("evaluate", "aacc"), ("secondary", m))]
            rows.append((self.label(key), *(_fmt(c) for c in cells)))
        return rows

    def roles(self) -> list[str]:
        seen: dict[str, None] = {}
        for _, role in self.histograms:
            seen.setdefault(role, None)
        return list(seen)

    def warnings(self) -> list[str]:
        out = []
        if self.bad_lines:
            out.append(f"{self.bad_lines} unreadable line(s) in events.jsonl were skipped")
        if self.skipped_events:
            out.append(f"{self.skipped_events} event(s) with unexpected fields were skipped")
        if self.newer_schema:
            out.append("written by a newer demtui (event schema > v1); some details may be missing")
        if self.bad_lines and not self.invocations:
            out.append("this does not look like a demtui events file")
        return out


def _fmt(v: Any) -> str:
    return "—" if not isinstance(v, (int, float)) or v != v else f"{v:.3f}"
