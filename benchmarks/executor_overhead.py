"""Scheduling overhead of each executor, and whether N runs on k slots take about N/k run-times.

For every executor the same grid of tiny runs (shapes, 1 victim epoch, a few attack steps,
no defense; the victim is cached before timing) is driven through `demtui run --sweep`.
Per executor it reports the median per-run overhead (executor start, or submission, to the
run's `run_started` event: process start and imports for `local`, task scheduling for
`ray`, job submission for submitit), the median run time inside the engine, the grid's
wall time, and the wall time predicted by ceil(N/k) × (run time + overhead).

    uv run python benchmarks/executor_overhead.py --runs 4 [--executors inline,local,ray,slurm]

Prints a Markdown table for docs/scale.md. Executors whose extra is missing are skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--set", "dataset.train_size=600", "--set", "dataset.test_size=100", "--set", "victim.epochs=1",
        "--set", "attack.iterations=30", "--defense", "none", "--set", "run.eval_samples=60",
        "--set", "run.attack_samples=60", "--targets", "1", "--set", "run.threads=1", "--device", "cpu",
        "--set", "run.noise_baseline=false"]
SETUPS = {
    "inline": (["--executor", "inline"], 1),
    "local": (["--executor", "local", "--jobs", "2"], 2),
    "ray": (["--executor", "ray", "--set", "executor.local_cpus=2"], 2),
    "slurm": (["--executor", "slurm", "--set", "executor.cluster=local", "--set", "executor.gpus=0",
               "--set", "executor.cpus=1"], None),
}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from demtui.cli import main; main()", *args]


def _run_seconds(run_dir: Path) -> float:
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if x.strip()]
    start = next(e["time"] for e in events if e["type"] == "run_started")
    end = next(e["time"] for e in events if e["type"] == "run_finished")
    return end - start


def measure(name: str, runs: int, root: Path) -> dict[str, object] | None:
    flags, slots = SETUPS[name]
    out = root / name
    t0 = time.perf_counter()
    proc = subprocess.run(_cli("run", "--headless", "--quiet", "--json", "--out", str(out),
                               # distinct cells that share one cached victim
                               "--sweep", f"attack.lr={','.join(str(0.005 + i * 1e-4) for i in range(runs))}",
                               *flags, *TINY), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"{name}: skipped ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})",
              file=sys.stderr)
        return None
    doc = json.loads(proc.stdout)
    overheads = [e["overhead_s"] for e in doc["sweep"] if e["overhead_s"] is not None]
    inside = [_run_seconds(Path(e["run_dir"])) for e in doc["sweep"]]
    k = slots or runs
    predicted = math.ceil(runs / k) * (statistics.median(inside) + statistics.median(overheads))
    return {"executor": name, "slots": k, "runs": runs, "overhead_s": statistics.median(overheads),
            "run_s": statistics.median(inside), "wall_s": wall, "predicted_s": predicted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--executors", default="inline,local,ray,slurm")
    args = parser.parse_args()
    os.environ.setdefault("DEMTUI_CACHE", tempfile.mkdtemp(prefix="demtui-bench-cache-"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Warm the victim cache so no executor pays for training.
        subprocess.run(_cli("run", "--headless", "--quiet", "--out", str(root / "warm"), *TINY), check=True,
                       capture_output=True)
        rows = [r for name in args.executors.split(",") if (r := measure(name.strip(), args.runs, root))]
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, {args.runs} runs per executor\n")
    print("| executor | slots | per-run overhead (median, s) | run inside the engine (median, s) | grid wall (s) "
          "| ceil(N/k)·(run + overhead) (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['executor']} | {r['slots']} | {r['overhead_s']:.2f} | {r['run_s']:.2f} | {r['wall_s']:.1f} "
              f"| {r['predicted_s']:.1f} |")


if __name__ == "__main__":
    main()
