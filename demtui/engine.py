"""The engine: run a RunSpec's stages into a run directory, resumably.

It never knows who is watching: progress goes out as events to whatever listeners
were subscribed (the events.jsonl writer, the headless view, observer plugins).
Ctrl-C / SIGTERM stop the current stage cleanly; finished stages stay on disk and
``--resume`` skips them.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demtui import stages as S
from demtui.errors import DemtuiError, SpecError
from demtui.events import EventBus, JsonlWriter, read_events
from demtui.lock import DirLock
from demtui.registry import Registry
from demtui.spec import RunSpec
from demtui.store import RunStore, atomic_write_text


@dataclass
class Outcome:
    run_dir: Path
    status: str  # finished | cancelled | failed
    results: dict[str, Any]
    summary: dict[str, Any]
    error: str = ""


def check_run_dir(store: RunStore, spec: RunSpec, resume: bool) -> list[str]:
    """Refuse to overwrite finished work or build on a corrupt run; accept spec changes that
    only unfinished stages use (demtui.resume), returning them worded for the log."""
    from demtui import resume as R

    if not store.exists():
        return []
    if (store.root / "sweep.json").exists():
        raise SpecError(f"{store.root} holds a grid, not a run; pass --resume (without --set or --sweep changes) "
                        "to continue that grid, or choose another --out.")
    read_events(store.events_path, strict=True)
    finished = [name for name, entry in store.results["stages"].items() if entry.get("status") == "finished"]
    if not resume and finished:
        raise SpecError(f"{store.root} already holds a run; pass --resume to continue it (--rerun STAGE to redo a "
                        "stage and the ones after it) or choose another --out.")
    if not store.spec_path.exists():
        return []
    saved, mine = R.saved_spec(store.spec_path), spec.to_dict()
    for d in (saved, mine):  # where it runs and who watches never change what it computes
        d.get("run", {}).pop("device", None)
        d.get("run", {}).pop("observers", None)
        d.pop("observer", None)
    return R.check_changes(store.root, _normalise(saved), _normalise(mine), finished)


def _normalise(d: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(d, sort_keys=True, default=str))


def planned_stages(spec: RunSpec) -> list[str]:
    names = ["baseline", "attack", "analyse"]
    if spec.defense is not None:
        names += ["defend", "evaluate"]
        if spec.run["secondary"]:
            names.append("secondary")
        from demtui.card import parts_of

        if parts_of(spec.run.get("card")):
            names.append("card")  # the robustness report card (demtui/card.py)
    return names


def execute(spec: RunSpec, registry: Registry, run_dir: Path, *, resume: bool = False,
            listeners: list[Callable[[dict[str, Any]], None]] | None = None) -> Outcome:
    """Run every planned stage; returns how it ended. User errors raise DemtuiError."""
    from demtui.context import resolve_device

    device = resolve_device(spec.run["device"])  # bad devices fail before anything is written
    from demtui.preflight import preflight

    preflight(spec, registry)  # every check that needs no data, before the directory is touched
    from demtui.observers import check as check_observers

    check_observers(spec, registry)  # a missing tracker extra fails before anything is written too
    store = RunStore(run_dir)
    lock = DirLock(run_dir).acquire()  # one writer per run directory, before anything is read or written
    try:
        return _execute_locked(spec, registry, store, device, resume, listeners or [], lock.note)
    finally:
        lock.release()


def _execute_locked(spec: RunSpec, registry: Registry, store: RunStore, device: Any, resume: bool,
                    listeners: list[Callable[[dict[str, Any]], None]], lock_note: str) -> Outcome:
    from demtui.context import Cancelled, RunContext

    run_dir = store.root
    changed = check_run_dir(store, spec, resume)
    from demtui import provenance

    providers = provenance.providers_for(spec, registry)
    provider_notes = provenance.compare(store.results.get("providers") or {}, providers) if store.exists() else []
    store.create()
    if changed:  # only unfinished stages used these values: they run with the new spec
        from demtui.resume import forget_partial

        forget_partial(store.results, [c.split(":", 1)[0] for c in changed])
    if changed or not store.spec_path.exists():
        atomic_write_text(store.spec_path, provenance.toml_comment(providers) + spec.to_toml())
    store.results["providers"] = providers
    store.flush()
    run_id = run_dir.name + "-" + uuid.uuid4().hex[:6]
    bus = EventBus(run_id=run_id, seq=len(read_events(store.events_path, strict=False)))
    writer = JsonlWriter(store.events_path)
    bus.subscribe(writer)
    for listener in listeners:
        bus.subscribe(listener)
    from demtui.observers import start_hub

    hub = start_hub(spec, registry, run_dir, bus)  # observers and demtui_run_event hooks, off the run's thread
    ctx = RunContext(device=device, seed=spec.run["seed"], bus=bus, artifacts=store.artifacts)
    from demtui import __version__
    from demtui.prepare import prepare

    started = time.perf_counter()
    bus.emit("run_started", spec=spec.to_dict(), device=str(device), resumed=bool(resume and store.results["stages"]),
             version=__version__, stages=["prepare", *planned_stages(spec)], pid=os.getpid(),
             host=socket.gethostname())
    if lock_note:
        ctx.log(lock_note[0].upper() + lock_note[1:] + ".", level="warning")
    for note in provider_notes:
        ctx.log(note, level="warning")
    if changed:
        ctx.log("The spec changed since this directory's last run (" + "; ".join(changed)
                + "); only stages that had not finished use these values.", level="warning")
    from demtui.threads import apply_threads

    ctx.log(apply_threads(int(spec.run.get("threads") or 0), device.type))
    in_main = threading.current_thread() is threading.main_thread()  # signal handlers only work there
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main else None
    stage = "prepare"
    try:
        ctx.stage = stage
        t0 = time.perf_counter()
        bus.emit("stage_started", stage=stage)
        from demtui.boundary import preload

        preload(spec, registry)  # every component's code imports (and a wrapper's rebuild exists) before any work
        prep = prepare(spec, registry, ctx)
        bus.emit("stage_finished", stage=stage, seconds=round(time.perf_counter() - t0, 3),
                 summary={"classes": len(prep.classes), "targets": prep.targets, "layer": prep.layer, **prep.info})
        state = S.RunState(spec=spec, registry=registry, ctx=ctx, store=store, prep=prep)
        for stage in planned_stages(spec):
            if store.stage(stage) is not None:
                bus.emit("stage_skipped", stage=stage, reason="finished in an earlier run")
                continue
            ctx.stage = stage
            t0 = time.perf_counter()
            bus.emit("stage_started", stage=stage)
            result = getattr(S, stage)(state)
            seconds = time.perf_counter() - t0
            store.finish_stage(stage, result, seconds)
            bus.emit("stage_finished", stage=stage, seconds=round(seconds, 3), summary=stage_headline(stage, result))
        summary = summarise(spec, store.results)
        store.set_summary(summary)
        from demtui.report import write_report

        write_report(store, spec, summary)
        bus.emit("run_finished", summary=summary, seconds=round(time.perf_counter() - started, 3))
        return Outcome(run_dir, "finished", store.results, summary)
    except (KeyboardInterrupt, Cancelled):
        bus.emit("run_cancelled", stage=stage)
        return Outcome(run_dir, "cancelled", store.results, summarise(spec, store.results))
    except DemtuiError as exc:
        _log_trace(bus, exc)
        bus.emit("run_failed", stage=stage, error=str(exc))
        raise
    except Exception as exc:
        blamed = _blame(exc, spec, registry, stage)  # plugin code innermost on the stack: name the plugin
        if blamed is not None:
            _log_trace(bus, blamed)
            bus.emit("run_failed", stage=stage, error=str(blamed))
            raise blamed from exc
        bus.emit("run_failed", stage=stage, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        if hub is not None:
            hub.close()
        writer.close()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


#: Which component a stage's own code runs most (ties between components of one package).
_STAGE_KINDS = {"prepare": ("model", "dataset"), "baseline": ("model",), "attack": ("attack", "model"),
                "analyse": ("attack", "model"), "defend": ("defense", "model"), "evaluate": ("defense", "attack"),
                "secondary": ("attack", "defense"), "card": ("attack", "defense")}


def _blame(exc: Exception, spec: RunSpec, registry: Registry, stage: str) -> Any:
    from demtui.blame import attribute
    from demtui.boundary import run_components

    try:
        components = run_components(spec, registry)
    except DemtuiError:
        return None
    return attribute(exc, components, stage, prefer=_STAGE_KINDS.get(stage, ()))


def _log_trace(bus: EventBus, exc: BaseException) -> None:
    """A plugin's failure: its sentence and its own traceback go to the run's log (events.jsonl)."""
    trace = getattr(exc, "trace", "")
    if trace:
        bus.emit("log", level="error", message=str(exc), trace=trace)


def stage_headline(stage: str, result: dict[str, Any]) -> dict[str, Any]:
    """A few scalars per stage for progress views (full results live in results.json)."""
    if stage in ("baseline", "evaluate"):
        return {"cacc": result["cacc"]}
    if stage in ("attack", "secondary"):
        return {"sr": _mean(result["targets"], "sr"), "aacc": _mean(result["targets"], "aacc")}
    if stage == "analyse":
        return {"repair_gap": result.get("repair_gap")}
    return {k: v for k, v in result.items() if isinstance(v, (int, float, str))}


def _mean(targets: dict[str, Any], metric: str) -> float | None:
    vals = [(v.get("metrics", v)).get(metric) for v in targets.values()]
    vals = [v for v in vals if v is not None and v == v]
    return round(sum(vals) / len(vals), 4) if vals else None


def summarise(spec: RunSpec, results: dict[str, Any]) -> dict[str, Any]:
    """The summary object of --json: fixed keys, null where a stage did not run."""
    from demtui.card import summary_of as card_summary

    stages = results.get("stages", {})
    get = lambda name: stages.get(name) if stages.get(name, {}).get("status") == "finished" else None  # noqa: E731
    base, atk, ev, sec, dfd, ana = (get(n) for n in ("baseline", "attack", "evaluate", "secondary", "defend", "analyse"))
    sr_key = "sr" if spec.run["mode"] == "targeted" else "fooling_rate"
    out: dict[str, Any] = {
        "cacc_before": round(base["cacc"], 4) if base else None,
        "cacc_after": round(ev["cacc"], 4) if ev else None,
        "sr_before": _mean(atk["targets"], sr_key) if atk else None,
        "sr_after": _mean(ev["targets"], sr_key) if ev else None,
        "aacc_before": _mean(atk["targets"], "aacc") if atk else None,
        "aacc_after": _mean(ev["targets"], "aacc") if ev else None,
        "delta_cacc": round(ev["cacc"] - base["cacc"], 4) if ev and base else None,
        "secondary_sr": _mean(sec["targets"], sr_key) if sec else None,
        "noise_sr": _mean(atk["noise"], sr_key) if atk and atk.get("noise") else None,
        "entropy_gap_before": ana.get("repair_gap") if ana else None,
        "entropy_gap_after": ev["entropy"].get("repair_gap") if ev else None,
        "attack_seconds": atk["seconds"] if atk else None,
        "defense_seconds": dfd["seconds"] if dfd else None,
        "mode": spec.run["mode"],
        "card": card_summary(get("card")),
    }
    return out
