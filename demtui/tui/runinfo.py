"""The runs folder as History sees it: one RunInfo per run directory, and the compare table.

Reads only small files (spec.toml, results.json, the first and last few KB of
events.jsonl, the end of run.log); History calls ``scan_runs`` from a worker thread.
Torch-free and Textual-free.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demtui.report import summary_rows
from demtui.executors.base import log_tail

TAIL_BYTES = 64 * 1024


@dataclass
class RunInfo:
    path: Path
    status: str = "unknown"  # finished | failed | cancelled | running? | died | incomplete | empty | unreadable
    spec: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    problem: str = ""
    pid: int | None = None  # the latest invocation's process and host (run_started)
    host: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def component(self, section: str) -> str:
        return str(self.spec.get(section, {}).get("name", "—"))

    def pair(self, before: str, after: str) -> str:
        return f"{_f(self.summary.get(before))} → {_f(self.summary.get(after))}"


def _f(v: Any) -> str:
    return "—" if not isinstance(v, (int, float)) or v != v else f"{v:.3f}"


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in ("events.jsonl", "results.json", "spec.toml", "submitted.toml",
                                                               "sweep.json", "sweep-base.toml", "driver.log"))


def scan_runs(root: Path) -> list[RunInfo]:
    """Every run directory directly under ``root``, newest first."""
    if not root.is_dir():
        return []
    infos = [read_run_info(p) for p in sorted(root.iterdir()) if is_run_dir(p)]
    return sorted(infos, key=lambda i: (-(i.started or 0), i.name))


def read_run_info(path: Path) -> RunInfo:
    info = RunInfo(path=path)
    if any((path / n).exists() for n in ("sweep.json", "sweep-base.toml", "driver.log")):
        return _grid_info(info)
    for name in ("spec.toml", "submitted.toml"):
        try:
            info.spec = tomllib.loads((path / name).read_text(encoding="utf-8"))
            break
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
    results: dict[str, Any] = {}
    try:
        results = json.loads((path / "results.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        info.problem = "results.json is unreadable"
    if not isinstance(results, dict):
        results, info.problem = {}, "results.json is not a demtui results file"
    info.summary = results.get("summary") or partial_summary(results, info.spec)
    first, last = _edge_events(path / "events.jsonl")
    if first is not None:
        info.started = first.get("time") if isinstance(first.get("time"), (int, float)) else None
        if not info.spec and isinstance(first.get("spec"), dict):
            info.spec = first["spec"]
    info.status = _status(last, path, results)
    if last is not None and last.get("type") == "run_started":
        pid = last.get("pid")
        info.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
        info.host = str(last["host"]) if last.get("host") else None
    if info.status == "failed" and last is not None and last.get("type") == "run_failed":
        info.problem = str(last.get("error", ""))
    elif info.status == "died":
        info.problem = f"its process {last.get('pid') if last else '?'} is gone without a final event; open it and press r to resume"
    elif info.status in ("failed", "incomplete") and not info.problem:
        info.problem = log_tail(path / "run.log", 1)
    if info.started is None:
        try:
            info.started = path.stat().st_mtime
        except OSError:
            pass
    return info


def _grid_info(info: RunInfo) -> RunInfo:
    """A grid folder: one row in History (Enter opens the grid view)."""
    try:
        data = json.loads((info.path / "sweep.json").read_text(encoding="utf-8"))
        cells = [c for c in data.get("sweep", []) if isinstance(c, dict)]
        done = sum(1 for c in cells if c.get("status") == "finished")
        info.status = f"grid {done}/{len(cells)}"
    except (OSError, ValueError, AttributeError):
        info.status = "grid"
    try:
        info.spec = tomllib.loads((info.path / "spec.toml").read_text(encoding="utf-8"))
        info.started = info.path.stat().st_mtime
    except (OSError, tomllib.TOMLDecodeError):
        pass
    return info


def _edge_events(path: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The first event and the last *run-level* event, from the file's ends only."""
    try:
        with open(path, "rb") as fh:
            head = fh.readline(TAIL_BYTES)
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read()
    except OSError:
        return None, None
    first = _parse(head)
    last = None
    for raw in reversed(tail.split(b"\n")):
        event = _parse(raw)
        if event and event.get("type") in ("run_started", "run_finished", "run_failed", "run_cancelled"):
            last = event
            break
    return first, last


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "type" in event else None


def _status(last: dict[str, Any] | None, path: Path, results: dict[str, Any]) -> str:
    if last is None:
        if (path / "events.jsonl").exists() and (path / "events.jsonl").stat().st_size:
            return "unreadable"
        return "incomplete" if (path / "run.log").exists() else "empty"
    status = {"run_finished": "finished", "run_failed": "failed", "run_cancelled": "cancelled"}.get(
        last["type"], "running?")
    if status == "running?":
        from demtui.tui.foreign import process_gone

        pid = last.get("pid")
        if isinstance(pid, int) and not isinstance(pid, bool) and process_gone(pid, last.get("host")):
            return "died"
    return status


def partial_summary(results: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers of the stages finished so far (a run that never reached its end)."""
    stages = results.get("stages", {}) if isinstance(results.get("stages"), dict) else {}
    mode = spec.get("run", {}).get("mode", "targeted")
    key = "sr" if mode == "targeted" else "fooling_rate"

    def mean(stage: str, metric: str) -> float | None:
        targets = (stages.get(stage) or {}).get("targets") or {}
        vals = [(v.get("metrics", v) if isinstance(v, dict) else {}).get(metric) for v in targets.values()]
        vals = [v for v in vals if isinstance(v, (int, float))]
        return sum(vals) / len(vals) if vals else None

    return {"mode": mode, "cacc_before": (stages.get("baseline") or {}).get("cacc"),
            "cacc_after": (stages.get("evaluate") or {}).get("cacc"),
            "sr_before": mean("attack", key), "sr_after": mean("evaluate", key),
            "aacc_before": mean("attack", "aacc"), "aacc_after": mean("evaluate", "aacc"),
            "secondary_sr": mean("secondary", key)}


def live_runs(root: Path) -> list[RunInfo]:
    """Runs under ``root`` still going on this host (a live demtui process named in run_started)."""
    from demtui.tui.foreign import process_gone, this_host

    return [i for i in scan_runs(root) if i.status == "running?" and i.pid and i.host == this_host()
            and not process_gone(i.pid, i.host)]


# -- compare and export ---------------------------------------------------------------------
def compare_table(runs: list[RunInfo]) -> tuple[list[str], list[list[str]]]:
    """Runs side by side (the paper's attack × defense tables): one column per run."""
    header = ["Metric", *(r.name for r in runs)]
    rows = [["Status", *(r.status for r in runs)]]
    for section in ("model", "dataset", "attack", "defense"):
        rows.append([section.capitalize(), *(r.component(section) for r in runs)])
    rows += param_differences(runs)
    per_run = [summary_rows(r.summary or {}) for r in runs]
    for i, (label, _, _) in enumerate(per_run[0] if per_run else []):
        if label.startswith("Time"):
            continue
        before = [pr[i][1] for pr in per_run]
        after = [pr[i][2] for pr in per_run]
        if any(before):
            rows.append([f"{label} — before", *before])
        if any(after):
            rows.append([f"{label} — after", *after])
    return header, rows


def _flat(spec: dict[str, Any]) -> dict[str, str]:
    out = {}
    for section, values in spec.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if key != "name":
                    out[f"{section}.{key}"] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def param_differences(runs: list[RunInfo]) -> list[list[str]]:
    """One row per spec parameter whose value differs between the runs (— where a run lacks it)."""
    flats = [_flat(r.spec) for r in runs]
    keys = sorted({k for f in flats for k in f})
    return [[k, *(f.get(k, "—") for f in flats)] for k in keys
            if len({f.get(k, "—") for f in flats}) > 1]


#: (label, summary key) of the numbers a CSV export carries, as numbers.
CSV_METRICS = (("CAcc before", "cacc_before"), ("CAcc after", "cacc_after"), ("SR before", "sr_before"),
               ("SR after", "sr_after"), ("AAcc before", "aacc_before"), ("AAcc after", "aacc_after"),
               ("ΔCAcc", "delta_cacc"), ("SR secondary", "secondary_sr"), ("SR noise", "noise_sr"),
               ("Entropy gap before", "entropy_gap_before"), ("Entropy gap after", "entropy_gap_after"),
               ("Attack seconds", "attack_seconds"), ("Defense seconds", "defense_seconds"))


def csv_table(runs: list[RunInfo]) -> tuple[list[str], list[list[Any]]]:
    """The compare table for spreadsheets: numbers stay numbers (full precision), missing is empty."""
    header = ["Metric", *(r.name for r in runs)]
    rows: list[list[Any]] = [["Status", *(r.status for r in runs)]]
    for section in ("model", "dataset", "attack", "defense"):
        rows.append([section, *(r.component(section) for r in runs)])
    rows += param_differences(runs)
    for label, key in CSV_METRICS:
        values = [(r.summary or {}).get(key) for r in runs]
        values = [v if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else "" for v in values]
        if any(v != "" for v in values):
            rows.append([label, *values])
    return header, rows


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def export_compare(runs: list[RunInfo], folder: Path, stem: str | None = None) -> tuple[Path, Path]:
    """Write the compare table as Markdown and CSV; returns both paths."""
    from demtui.store import atomic_write_text

    header, rows = compare_table(runs)
    stem = stem or f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    md, cs = folder / f"{stem}.md", folder / f"{stem}.csv"
    atomic_write_text(md, f"# demtui: {len(runs)} runs compared\n\n" + to_markdown(header, rows))
    atomic_write_text(cs, to_csv(*csv_table(runs)))
    return md, cs
