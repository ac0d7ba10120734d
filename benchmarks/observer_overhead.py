"""What the three built-in observers cost a run: the quickstart with and without them.

Each repeat runs the built-in quickstart (`demtui run --headless`, victim cached before any
timing) twice in fresh processes, alternating the order, once plain and once with
`--observer tensorboard --observer mlflow --observer wandb` (W&B offline, MLflow's local
file store, TensorBoard event files, all under the run directory). Per setup it reports
medians of:

- run time: run_started → run_finished in events.jsonl, what the stages feel (observers run
  on their own thread, so this is the number "never slows the run" is about);
- process wall time: the whole command, including importing the trackers and their close
  (W&B finishing its run file, MLflow copying the artifacts) after the last event;
- process CPU time (user + sys of the command and the children it waited for).

    OMP_NUM_THREADS=1 uv run python benchmarks/observer_overhead.py --repeats 3 [--light]

`--light` shrinks the quickstart (fewer attack iterations and defense epochs) for a quick
look. Prints a Markdown table for docs/benchmarks.md with the machine's load average.

    uv run python benchmarks/observer_overhead.py --replay RUN_DIR

measures each observer alone, in a fresh process, on a finished run's events (a copy of
the run directory): the first event (importing the tracker and starting its run), every
other event, and close, in wall and CPU time of the thread that ran them. That work is
what the observer thread adds to a run, independent of how loaded the machine is.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBSERVERS = ["--observer", "tensorboard", "--observer", "mlflow", "--observer", "wandb"]
LIGHT = ["--set", "attack.iterations=50", "--set", "defense.epochs=3", "--set", "defense.refine_epochs=1"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from demtui.cli import main; main()", *args]


def _run_seconds(run_dir: Path) -> float:
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if x.strip()]
    start = next(e["time"] for e in events if e["type"] == "run_started")
    end = next(e["time"] for e in events if e["type"] == "run_finished")
    return end - start


def once(out: Path, extra: list[str], env: dict[str, str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(_cli("run", "--headless", "--quiet", "--json", "--device", "cpu", "--out", str(out), *extra),
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"run": _run_seconds(out), "wall": wall, "cpu": cpu}


def replay_one(name: str, run_dir: Path) -> dict[str, float]:
    """One observer over a copy of ``run_dir``'s events in this process: seconds per phase."""
    import shutil

    from demtui.observers import ObserverContext
    from demtui.registry import get_registry

    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if x.strip()]
    copy = Path(tempfile.mkdtemp()) / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("tensorboard", "mlruns", "wandb", "run.lock"))
    source = get_registry().get("observer", name)
    out: dict[str, float] = {"events": len(events)}
    w0, c0 = time.perf_counter(), time.thread_time()
    observer = source.load()(source.params.defaults(), ObserverContext(run_dir=copy, name=name))
    observer.on_event(events[0])
    w1, c1 = time.perf_counter(), time.thread_time()
    for event in events[1:]:
        observer.on_event(event)
    w2, c2 = time.perf_counter(), time.thread_time()
    observer.close("finished")
    w3, c3 = time.perf_counter(), time.thread_time()
    out.update(first_wall=w1 - w0, first_cpu=c1 - c0, rest_wall=w2 - w1, rest_cpu=c2 - c1, close_wall=w3 - w2,
               close_cpu=c3 - c2)
    shutil.rmtree(copy.parent, ignore_errors=True)
    return out


def replay(run_dir: Path) -> None:
    print(f"Each observer alone on {run_dir.name}'s events, fresh process, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| observer | first event: import + start (wall / CPU) | other events (wall / CPU, per event) "
          "| close (wall / CPU) |")
    print("|---|---|---|---|")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY")}
    for name in ("tensorboard", "mlflow", "wandb"):
        proc = subprocess.run([sys.executable, __file__, "--replay-one", name, str(run_dir)], capture_output=True,
                              text=True, env=env)
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'} | | |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        n = max(1, int(r["events"]) - 1)
        print(f"| {name} | {r['first_wall']:.2f} s / {r['first_cpu']:.2f} s | {r['rest_wall']:.2f} s / "
              f"{r['rest_cpu']:.2f} s ({1e3 * r['rest_cpu'] / n:.2f} ms CPU) | {r['close_wall']:.2f} s / "
              f"{r['close_cpu']:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--light", action="store_true", help="a smaller quickstart (see the module docstring)")
    parser.add_argument("--replay", type=Path, help="time each observer alone on this finished run's events")
    parser.add_argument("--replay-one", nargs=2, metavar=("NAME", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_one:
        print(json.dumps(replay_one(args.replay_one[0], Path(args.replay_one[1]))))
        return
    if args.replay:
        replay(args.replay)
        return
    base = LIGHT if args.light else []
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY")}
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env.setdefault("DEMTUI_CACHE", str(root / "cache"))
        once(root / "warm", [*base, "--defense", "none", "--set", "attack.iterations=1"], env)  # cache the victim
        times: dict[str, list[dict[str, float]]] = {"plain": [], "observers": []}
        for i in range(args.repeats):
            order = ["plain", "observers"] if i % 2 == 0 else ["observers", "plain"]
            for setup in order:
                flags = base + (OBSERVERS if setup == "observers" else [])
                times[setup].append(once(root / f"{setup}-{i}", flags, env))
                print(f"repeat {i} {setup}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times[setup][-1].items()),
                      file=sys.stderr)
    med = {s: {k: statistics.median(t[k] for t in ts) for k in ("run", "wall", "cpu")} for s, ts in times.items()}
    load = os.getloadavg()
    print(f"{'light ' if args.light else ''}quickstart, {args.repeats} repeats each, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at the end\n")
    print("| median | plain | tensorboard + mlflow + wandb | ratio |")
    print("|---|---|---|---|")
    for key, label in (("run", "run time (run_started → run_finished)"), ("wall", "process wall time"),
                       ("cpu", "process CPU time (user + sys)")):
        a, b = med["plain"][key], med["observers"][key]
        print(f"| {label} | {a:.1f} s | {b:.1f} s | {b / a:.3f} |")
    print("\nAll runs (s): " + json.dumps({s: [{k: round(v, 1) for k, v in t.items()} for t in ts]
                                          for s, ts in times.items()}))


if __name__ == "__main__":
    main()
