"""A synthetic, deterministic run directory: try the TUI without torch, and test it.

``write_sample_run`` writes what the engine would (spec.toml, events.jsonl, results.json)
with numbers shaped like the paper's: UAP-perturbed inputs have lower entropy than clean
ones before the defense (RQ1), and Democratic Training closes the gap. Timestamps are
fixed, so screenshots of it never change.

    python -m demtui.tui.sample runs/sample     # then: demtui, F4, Enter
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

STAGES = ["prepare", "baseline", "attack", "analyse", "defend", "evaluate", "secondary"]
ROLES = (("shallow1", "conv1", 9.6), ("shallow2", "pool1", 8.3), ("middle1", "conv3", 9.0),
         ("middle2", "pool2", 7.6), ("deep1", "conv5", 8.3), ("deep2", "gap", 4.2))
CLASSES = ["triangle", "ring", "square", "cross", "diamond", "bar", "dot", "arc", "star", "grid"]
T0 = 1_700_000_000.0
BINS = 24


def _bell(center: float, width: float, lo: float, hi: float, n: int) -> list[int]:
    step = (hi - lo) / BINS
    dens = [math.exp(-0.5 * ((lo + (i + 0.5) * step - center) / width) ** 2) for i in range(BINS)]
    total = sum(dens) or 1.0
    return [round(n * d / total) for d in dens]


def _spec(targets: list[int], attack: str, defense: str) -> dict[str, Any]:
    return {"run": {"seed": 0, "device": "cpu", "mode": "targeted", "targets": targets, "eval_samples": 200,
                    "attack_samples": 200, "secondary": True, "noise_baseline": True, "batch_size": 256,
                    "bins": BINS, "layer": ""},
            "model": {"name": "smallcnn", "width": 16}, "dataset": {"name": "shapes"},
            "victim": {"epochs": 5}, "attack": {"name": attack, "iterations": 200},
            "defense": {"name": defense}}


class _Writer:
    def __init__(self, run: str) -> None:
        self.run, self.seq, self.t, self.lines = run, 0, T0, []

    def emit(self, type: str, dt: float = 0.5, **fields: Any) -> None:
        self.t += dt
        event = {"v": 1, "seq": self.seq, "time": round(self.t, 3), "run": self.run, "type": type, **fields}
        self.lines.append(json.dumps(event, separators=(",", ":")))
        self.seq += 1


def _metrics(sr: float, aacc: float, cacc: float) -> dict[str, float]:
    return {"sr": sr, "aacc": aacc, "cacc": cacc, "fooling_rate": round(min(1.0, sr + 0.03), 3)}


def _entropy(w: _Writer, phase: str, targets: list[int], gap: float) -> dict[str, Any]:
    layers = {}
    for depth, (role, layer, clean_mu) in enumerate(ROLES):
        drop = gap * (depth + 1) / len(ROLES)  # deeper layers lose more entropy under the UAP (Fig. 2)
        lo, hi = clean_mu - 1.2, clean_mu + 0.6
        w.emit("entropy", 0.01, phase=phase, role=role, layer=layer, source="clean", target=None, mean=clean_mu,
               bins=BINS, lo=lo, hi=hi, counts=_bell(clean_mu, 0.18, lo, hi, 200))
        pert, alone = {}, {}
        for i, t in enumerate(targets):
            mu = clean_mu - drop * (1 + 0.1 * i)
            w.emit("entropy", 0.01, phase=phase, role=role, layer=layer, source="perturbed", target=str(t),
                   mean=round(mu, 4), bins=BINS, lo=lo, hi=hi, counts=_bell(mu, 0.22, lo, hi, 200))
            umu = clean_mu - 1.0 + 0.05 * i if phase == "before" else clean_mu - 0.3
            w.emit("entropy", 0.01, phase=phase, role=role, layer=layer, source="uap", target=str(t),
                   mean=round(umu, 4), bins=BINS, lo=lo, hi=hi, counts=_bell(umu, 0.01, lo, hi, 1))
            pert[str(t)], alone[str(t)] = round(mu, 4), round(umu, 4)
        layers[role] = {"layer": layer, "clean": clean_mu, "perturbed": pert, "uap": alone,
                        "gap": round(drop / clean_mu, 4)}
    return layers


def write_sample_run(path: Path, *, targets: list[int] | None = None, stop_after: str | None = None,
                     ending: str = "running", attack: str = "df-uap", defense: str = "democratic",
                     strength: float = 1.0, pid: int | None = None, host: str | None = None) -> Path:
    """Write a run directory. ``stop_after``: the last stage written (a run still going);
    ``ending``: running | failed | cancelled (used with ``stop_after``); ``strength`` scales
    the attack, so several sample runs differ in a compare table; ``pid``/``host``: the process
    its run_started names (a dead pid makes a run that died without its last event)."""
    targets = targets if targets is not None else [1, 2]
    path.mkdir(parents=True, exist_ok=True)
    spec = _spec(targets, attack, defense)
    w = _Writer(f"{path.name}-000000")
    process = {"pid": pid, "host": host} if pid else {}
    w.emit("run_started", 0, spec=spec, device="cpu", resumed=False, version="0.1.0", stages=STAGES, **process)
    results: dict[str, Any] = {"version": 1, "stages": {}}
    cacc = 0.94
    sr_before = [round(min(0.97, 0.6 + 0.3 * strength - 0.05 * i), 3) for i in range(len(targets))]
    sr_after = [round(0.02 + 0.01 * i, 3) for i in range(len(targets))]
    for stage in STAGES:
        w.emit("stage_started", 0.1, stage=stage)
        data: dict[str, Any] = {}
        if stage == "prepare":
            for step in range(1, 9):
                w.emit("progress", 0.4, stage=stage, done=step, total=8,
                       info={"epoch": 1 + step // 5, "loss": round(2.3 / step, 4)})
            w.emit("log", 0.1, level="info", message="Trained victim in 3.2 s; cached")
        elif stage == "baseline":
            w.emit("log", 0.1, level="info", message=f"Clean accuracy of the original model: {cacc:.3f}")
            data = {"cacc": cacc, "classes": CLASSES, "eval_samples": 200}
        elif stage in ("attack", "secondary"):
            data["targets"] = {}
            for i, t in enumerate(targets):
                w.emit("log", 0.1, level="info", message=f"{stage}: crafting {attack} UAP for target {t} "
                                                          f"({CLASSES[t]}) ({i + 1}/{len(targets)})")
                for it in (50, 100, 150, 200):
                    w.emit("progress", 0.5, stage=stage, done=it, total=200, info={"loss": round(3.0 / it * 40, 4)})
                sr = sr_before[i] if stage == "attack" else round(sr_after[i] + 0.05, 3)
                m = _metrics(sr, round(cacc * (1 - sr), 3), cacc)
                w.emit("result", 0.1, phase=stage, target=str(t), metrics=m)
                data["targets"][str(t)] = {"path": f"artifacts/uap_{stage}_{t}.safetensors", "metrics": m}
        elif stage == "analyse":
            layers = _entropy(w, "before", targets, gap=1.0 * strength)
            data = {"layers": layers, "repair_role": "deep2", "repair_gap": layers["deep2"]["gap"]}
        elif stage == "defend":
            for step in range(1, 41):
                loss = 2.4 * math.exp(-step / 12) + 0.35 + 0.05 * math.sin(step)
                w.emit("progress", 0.25, stage=stage, done=step, total=40,
                       info={"stage": "repair", "epoch": 1 + step // 10, "loss": round(loss, 4)})
            data = {"subset": 1000, "layer": "gap"}
        elif stage == "evaluate":
            ev_targets = {}
            for i, t in enumerate(targets):
                m = _metrics(sr_after[i], round(cacc - 0.02 - sr_after[i] / 2, 3), cacc - 0.01)
                w.emit("result", 0.1, phase="evaluate", target=str(t), metrics=m)
                ev_targets[str(t)] = m
            layers = _entropy(w, "after", targets, gap=0.08)
            data = {"cacc": cacc - 0.01, "targets": ev_targets,
                    "entropy": {"layers": layers, "repair_role": "deep2", "repair_gap": layers["deep2"]["gap"]}}
        results["stages"][stage] = {"status": "finished", "seconds": 2.0, **data}
        w.emit("stage_finished", 0.1, stage=stage, seconds=2.0, summary={k: v for k, v in data.items()
                                                                         if isinstance(v, (int, float))})
        if stage == stop_after:
            if ending == "running":  # stopped inside the next stage, as a live run looks
                nxt = STAGES[STAGES.index(stage) + 1]
                w.emit("stage_started", 0.1, stage=nxt)
                for step in range(1, 21):
                    w.emit("progress", 0.25, stage=nxt, done=step, total=40,
                           info={"epoch": 1 + step // 10, "loss": round(2.4 * math.exp(-step / 12) + 0.35, 4)})
            elif ending == "failed":
                w.emit("run_failed", 0.1, stage=STAGES[STAGES.index(stage) + 1], error="CollapseError: the model collapsed")
            elif ending == "cancelled":
                w.emit("run_cancelled", 0.1, stage=STAGES[STAGES.index(stage) + 1])
            break
    if stop_after is None:
        summary = _summary(results, strength)
        results["summary"] = summary
        w.emit("run_finished", 0.1, summary=summary, seconds=round(w.t - T0, 3))
    results["stages"].pop("prepare", None)
    (path / "events.jsonl").write_text("\n".join(w.lines) + "\n", encoding="utf-8")
    (path / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    import tomli_w

    (path / "spec.toml").write_text(tomli_w.dumps(spec), encoding="utf-8")
    return path


def _summary(results: dict[str, Any], strength: float) -> dict[str, Any]:
    st = results["stages"]

    def mean(stage: str, key: str) -> float:
        vals = [(v.get("metrics", v))[key] for v in st[stage]["targets"].values()]
        return round(sum(vals) / len(vals), 4)

    return {"cacc_before": st["baseline"]["cacc"], "cacc_after": st["evaluate"]["cacc"],
            "sr_before": mean("attack", "sr"), "sr_after": mean("evaluate", "sr"),
            "aacc_before": mean("attack", "aacc"), "aacc_after": mean("evaluate", "aacc"),
            "delta_cacc": round(st["evaluate"]["cacc"] - st["baseline"]["cacc"], 4),
            "secondary_sr": mean("secondary", "sr"), "noise_sr": 0.01,
            "entropy_gap_before": st["analyse"]["repair_gap"], "entropy_gap_after": st["evaluate"]["entropy"]["repair_gap"],
            "attack_seconds": 2.0, "defense_seconds": 2.0, "mode": "targeted"}


def write_sample_grid(root: Path) -> Path:
    """A 2×2 grid folder as a driver leaves it mid-way: two finished cells, one failed, one running."""
    axes = {"attack.name": ["df-uap", "fgsm-uap"], "defense.name": ["democratic", "none"]}
    states = {("df-uap", "democratic"): "finished", ("df-uap", "none"): "finished",
              ("fgsm-uap", "democratic"): "failed", ("fgsm-uap", "none"): "running"}
    cells = []
    for (attack, defense), status in states.items():
        label = f"attack.name={attack},defense.name={defense}"
        extra: dict[str, Any] = {} if status == "finished" else {"stop_after": "attack", "ending": status}
        run = write_sample_run(root / label, attack=attack, defense=defense,
                               strength=1.0 if defense == "democratic" else 0.5, **extra)
        summary = json.loads((run / "results.json").read_text()).get("summary")
        if defense == "none" and summary:
            summary["sr_after"] = 0.6  # no defense: the attack still works
        cells.append({"label": label, "values": {"attack.name": attack, "defense.name": defense},
                      "status": status, "message": "CollapseError: the model collapsed" if status == "failed" else "",
                      "summary": summary, "run_dir": str(run)})
    (root / "sweep.json").write_text(json.dumps({"version": 2, "kind": "grid", "status": "running",
                                                 "executor": "local", "axes": axes, "sweep": cells}))
    return root


if __name__ == "__main__":
    out = write_sample_run(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/sample"))
    print(f"Wrote {out}; open it with: demtui  (F4 History, or o in Watch)")
