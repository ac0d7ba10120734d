"""N runs on N GPUs of one host through the local executor: does the wall time stay flat?

Runs the same small grid (the quickstart with ``defense.lr`` varied a hair per cell, so
every cell reuses the one cached victim and does the same work) through
``demtui run --sweep ... --executor local --devices cuda:0,...,cuda:N-1`` for N = 1, 2, …
up to the visible GPUs, N cells each, plus 2 cells sharing one GPU
(``executor.per_device=2``). Scaling efficiency = the runs/s against one run on one GPU divided by the GPUs used; 100% is perfect. The victim is trained (cached) before anything is timed.

    python3 benchmarks/gpu_scaling.py                       # on a GPU host (PYTHONPATH=. works)
    DEVICE=cpu python3 benchmarks/gpu_scaling.py --tiny     # a dry run: 1 and 2 CPU slots
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--set", "dataset.train_size=1000", "--set", "dataset.test_size=200", "--set", "victim.epochs=1",
        "--set", "attack.iterations=10", "--set", "defense.epochs=1", "--set", "defense.refine_epochs=0",
        "--set", "run.eval_samples=100", "--set", "run.attack_samples=100", "--targets", "1",
        "--set", "run.secondary=false", "--set", "run.threads=1"]


def gpus() -> int:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0
    out = subprocess.run([exe, "-L"], capture_output=True, text=True, check=False).stdout
    return sum(line.startswith("GPU ") for line in out.splitlines())


def demtui(*args: str) -> list[str]:
    return [sys.executable, "-m", "demtui", "run", "--headless", "--quiet", *args]


def timed(cmd: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        print(done.stdout[-1500:], done.stderr[-1500:], file=sys.stderr)
    return time.perf_counter() - t0, done.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a much smaller run per cell (dry runs)")
    ap.add_argument("--max-gpus", type=int, default=8)
    args = ap.parse_args()
    device = os.environ.get("DEVICE", "cuda")
    extra = TINY if args.tiny else []
    n_gpus = min(args.max_gpus, gpus()) if device == "cuda" else 2
    slots = [f"cuda:{i}" for i in range(n_gpus)] if device == "cuda" else ["cpu", "cpu"]
    if not slots:
        print("no GPU visible; nothing to scale", file=sys.stderr)
        return
    work = Path(tempfile.mkdtemp(prefix="demtui-scaling-"))
    base = "cuda:0" if device == "cuda" else "cpu"
    warm, rc = timed(demtui("--device", base, "--out", str(work / "warm"), *extra))  # trains and caches the victim
    print(f"warm-up run (victim training included): {warm:.1f} s, rc={rc}", file=sys.stderr)
    lrs = lambda n: ",".join(f"{0.003 * (1 + i * 1e-3):.7f}" for i in range(n))  # noqa: E731
    rows = []
    configs = [(n, slots[:n], 1) for n in range(1, len(slots) + 1)] if device == "cuda" else [(1, ["cpu"], 1), (2, ["cpu"], 2)]
    if device == "cuda":
        configs.append((2, slots[:1], 2))
    for n, devs, per in configs:
        out = work / f"n{n}-d{len(devs)}-p{per}"
        cmd = demtui("--sweep", f"defense.lr={lrs(n)}", "--executor", "local", "--devices", ",".join(devs),
                     "--set", f"executor.per_device={per}", "--out", str(out), *extra)
        wall, rc = timed(cmd)
        rows.append((n, len(devs) if device == "cuda" else 1, per, wall, rc))
    single = rows[0][3]
    print("| runs | devices | runs per device | wall (s) | runs/s vs 1 run | per-device efficiency | rc |")
    print("|---|---|---|---|---|---|---|")
    for n, d, per, wall, rc in rows:
        speedup = n * single / wall
        print(f"| {n} | {d} | {per} | {wall:.1f} | {speedup:.2f}× | {speedup / d:.0%} | {rc} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
