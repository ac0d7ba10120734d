"""Which spec changes a run directory can take, and re-running a stage.

A run directory keeps finished stages. A spec change is safe when no *finished* stage
used the changed value: a run that failed in prepare takes any fixed spec, an attack
that never finished takes new attack parameters. ``--rerun STAGE`` forgets STAGE and
every stage after it, so their values may change too. No torch here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from demtui.errors import SpecError, did_you_mean

#: Stage order (demtui.stages.STAGES, repeated here so this module stays light).
ORDER = ("baseline", "attack", "analyse", "defend", "evaluate", "secondary")
#: Values that change no result.
NEUTRAL = {"run.device", "run.threads"}
_ATTACK_KEYS = {"run.attack_samples", "run.mode", "run.targets", "run.noise_baseline"}


def first_stage_using(key: str) -> str | None:
    """The earliest stage whose result depends on the flattened spec key ``key`` (None: no stage)."""
    section = key.split(".", 1)[0]
    if key in NEUTRAL:
        return None
    if section == "attack" or key in _ATTACK_KEYS:
        return "attack"
    if section == "defense":
        return "defend"
    if key == "run.secondary":
        return "secondary"
    if key == "run.bins":
        return "analyse"
    return "baseline"  # model, dataset, victim, seed, samples, layer: everything


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _index(stage: str) -> int:
    return ORDER.index(stage) if stage in ORDER else len(ORDER)  # a plugin's extra stage runs last


def changes(saved: dict[str, Any], mine: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key → (saved, now) for every flattened key whose value differs."""
    a, b = flatten(saved), flatten(mine)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def check_changes(root: Path, saved: dict[str, Any], mine: dict[str, Any], finished: list[str]) -> list[str]:
    """The accepted changes, worded for the log; raise SpecError when a finished stage used one."""
    diff = changes(saved, mine)
    done = {s: _index(s) for s in finished}
    notes = []
    for key, (old, new) in diff.items():
        stage = first_stage_using(key)
        if stage is None:
            continue
        used = [s for s, i in done.items() if i >= _index(stage)]
        if used:
            first = min(used, key=_index)
            raise SpecError(f"{root} was made with a different spec ({key}: saved {old!r}, now {new!r}) and its "
                            f"finished stage '{first}' used that value; add --rerun {first} to redo it and the "
                            "stages after it, resume with the saved spec (omit the changed flags), or choose "
                            "another --out.")
        notes.append(f"{key}: {old!r} → {new!r}")
    return notes


def stages_from(stage: str) -> list[str]:
    """``stage`` and every stage after it."""
    return [s for s in ORDER if _index(s) >= _index(stage)]


def reset_stages(results: dict[str, Any], stage: str) -> list[str]:
    """Forget ``stage`` and every later stage (and their partial work) in ``results``; the names dropped."""
    if stage not in ORDER:
        raise SpecError(f"--rerun {stage!r} is not a stage." + did_you_mean(stage, ORDER)
                        + f" Stages are: {', '.join(ORDER)}.")
    stages = results.setdefault("stages", {})
    dropped = [s for s in list(stages) if _index(s) >= _index(stage)]
    for name in dropped:
        stages.pop(name, None)
    for name in list(results.get("partial", {})):
        if _index(name) >= _index(stage):
            results["partial"].pop(name, None)
    results.pop("summary", None)
    return dropped


def forget_partial(results: dict[str, Any], notes_keys: list[str]) -> None:
    """Partial work of a stage whose values changed is stale: drop it so the stage starts over."""
    firsts = [first_stage_using(k) for k in notes_keys]
    firsts = [s for s in firsts if s is not None]
    if not firsts:
        return
    earliest = min(firsts, key=_index)
    for name in list(results.get("partial", {})):
        if _index(name) >= _index(earliest):
            results["partial"].pop(name, None)


def saved_spec(path: Path) -> dict[str, Any]:
    """The spec a run directory was made with (device dropped: it changes no result)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path} is unreadable ({exc}); move the run directory aside and start a fresh run.") from None
    return data


def is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in ("spec.toml", "results.json", "events.jsonl", "sweep.json",
                                                   "submitted.toml"))


def check_resumable(out: Path) -> None:
    """--resume needs an existing run or grid; a typo must not start a new run silently."""
    if not out.exists():
        raise SpecError(f"--resume: {out} does not exist; check the path, or drop --resume to start a new run there.")
    if not out.is_dir():
        raise SpecError(f"--resume: {out} is a file, not a run directory; point --out at a run directory.")
    from demtui.lock import LockedError, holder_if_locked, locked_message

    holder = holder_if_locked(out)
    if holder is not None:  # a run in its first seconds has only its lock
        raise LockedError(locked_message(out, holder))
    if not is_run_dir(out):
        raise SpecError(f"--resume: {out} is not a demtui run or grid (no spec.toml, results.json or events.jsonl); "
                        "check the path, or drop --resume to start a new run there.")


def rerun(run_dir: Path, spec: Any, registry: Any, stage: str | None) -> tuple[list[str], list[str]]:
    """Under the run's lock: forget ``stage`` and what follows (``--rerun``), check the spec against
    the stages still finished, and save it, so any executor then resumes the directory with it.

    With ``stage=None`` only the spec is checked and saved (``--resume`` on a background
    executor, whose worker reads the saved spec). Returns (stages forgotten, changes accepted).
    """
    import json

    from demtui import provenance
    from demtui.events import read_events
    from demtui.lock import DirLock
    from demtui.store import RunStore, atomic_write_text

    check_resumable(run_dir)
    if (run_dir / "sweep.json").exists():
        raise SpecError(f"--rerun works on one run; {run_dir} is a grid (rerun its cells' directories one by one).")
    with DirLock(run_dir):
        store = RunStore(run_dir)
        read_events(store.events_path, strict=True)
        dropped = reset_stages(store.results, stage) if stage is not None else []
        finished = [n for n, e in store.results["stages"].items() if e.get("status") == "finished"]
        mine = spec.to_dict()
        notes: list[str] = []
        if store.spec_path.exists():
            saved = saved_spec(store.spec_path)
            saved.get("run", {}).pop("device", None)
            ours = {**mine, "run": {k: v for k, v in mine["run"].items() if k != "device"}}
            norm = lambda d: json.loads(json.dumps(d, sort_keys=True, default=str))  # noqa: E731
            notes = check_changes(run_dir, norm(saved), norm(ours), finished)
            forget_partial(store.results, [n.split(":", 1)[0] for n in notes])
        if dropped or notes or not store.spec_path.exists():
            store.flush()
            atomic_write_text(store.spec_path, provenance.toml_comment(provenance.providers_for(spec, registry))
                              + spec.to_toml())
    return dropped, notes
