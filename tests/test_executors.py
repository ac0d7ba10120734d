"""Executors and grids (issue 12): the same tiny grid inline, on a local Ray and through submitit.

Numbers must not depend on where a run executes: every run here pins ``run.threads=1``
(a Ray worker gets one thread by default), and a run whose worker is killed mid-stage is
retried and resumes to the very same figures. Budgets are tiny so the module stays
around a minute on two cores (most of it starting Ray).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from demtui import spec as specmod
from demtui.cli import app
from demtui.executors.inline import InlineExecutor
from demtui.grid import Grid
from demtui.launch import plan_cells
from demtui.registry import get_registry

TINY_SET = {"dataset": {"name": "shapes", "train_size": 600, "test_size": 100},
            "victim": {"epochs": 1}, "attack": {"name": "df-uap", "iterations": 60},
            "defense": {"name": "none"},
            "run": {"eval_samples": 60, "attack_samples": 60, "targets": [1], "device": "cpu", "threads": 1}}
AXES = {"attack.eps": ["4/255", "16/255"], "run.seed": [0, 1]}
TIMING = ("attack_seconds", "defense_seconds")
TINY_FLAGS = ["--set", "dataset.train_size=600", "--set", "dataset.test_size=100", "--set", "victim.epochs=1",
              "--set", "attack.iterations=60", "--defense", "none", "--set", "run.eval_samples=60",
              "--set", "run.attack_samples=60", "--targets", "1", "--set", "run.threads=1", "--device", "cpu"]


def _cells():
    data = specmod.merge(specmod.quickstart_dict(), TINY_SET)
    return plan_cells(data, dict(AXES), get_registry())


def _numbers(grid: Grid) -> dict[str, dict[str, Any]]:
    return {c.label: {k: v for k, v in (c.summary or {}).items() if k not in TIMING} for c in grid.cells}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The 2×2 grid run one after another in this process: what every executor must match."""
    grid = Grid(tmp_path_factory.mktemp("inline"), _cells(), InlineExecutor(), axes=AXES)
    assert grid.run(resume=False) == "finished"
    numbers = _numbers(grid)
    assert len(numbers) == 4 and all(n["sr_before"] is not None for n in numbers.values())
    return numbers


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")
    from demtui.executors.ray_executor import RayExecutor

    executor = RayExecutor(local_cpus=2, num_cpus=1, max_retries=2)
    yield executor
    executor.started_here = True
    executor.shutdown(cancel=True)


def _kill_first_worker_mid_attack(root: Path, killed: list[int]) -> None:
    """Kill -9 the process running the first cell once its attack stage is under way."""
    events = root / "attack.eps=4_255,run.seed=0" / "events.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not killed:
        try:
            lines = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
        except (OSError, ValueError):
            lines = []
        started = next((e for e in lines if e["type"] == "run_started"), None)
        if started and any(e["type"] == "progress" and e["stage"] == "attack" for e in lines):
            os.kill(started["pid"], signal.SIGKILL)
            killed.append(started["pid"])
            return
        time.sleep(0.02)


def test_ray_grid_equals_the_sequential_grid_even_when_a_worker_dies(reference, ray_executor, tmp_path) -> None:
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_first_worker_mid_attack, args=(tmp_path, killed), daemon=True)
    watcher.start()
    grid = Grid(tmp_path, _cells(), ray_executor, axes=AXES, extra={})
    assert grid.run(resume=False) == "finished"
    watcher.join(timeout=1)
    assert killed, "the worker finished before it could be killed; raise attack.iterations"
    first = grid.cells[0]
    assert first.attempts == 2, first  # retried once, by Ray, after the worker died
    assert "finished" in (tmp_path / first.label / "events.jsonl").read_text().splitlines()[-1]
    assert _numbers(grid) == reference  # the resumed run reached the very same figures
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["executor"] == "ray" and manifest["status"] == "finished"
    assert all(e["overhead_s"] is not None for e in manifest["sweep"])


def test_submitit_local_cluster_runs_a_grid(reference, tmp_path) -> None:
    pytest.importorskip("submitit")
    from demtui.executors.slurm import SlurmExecutor

    cells = _cells()[:2]
    executor = SlurmExecutor(folder=tmp_path / ".submitit", cluster="local", time_min=10, gpus=0, cpus=1)
    grid = Grid(tmp_path, cells, executor, axes=AXES)
    assert grid.run(resume=False) == "finished"
    assert _numbers(grid) == {k: v for k, v in reference.items() if k in {c.label for c in cells}}


def test_local_executor_grid_survives_a_killed_driver_and_resumes(reference, tmp_path) -> None:
    """kill -9 of the driver mid-grid: its run stops, and --resume runs only what is unfinished."""
    out = tmp_path / "g"
    cmd = [sys.executable, "-c", "from demtui.cli import main; main()", "run", "--headless", "--quiet",
           "--out", str(out), "--sweep", "attack.eps=4/255,16/255", "--sweep", "run.seed=0,1",
           "--executor", "local", "--jobs", "1", *TINY_FLAGS]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "attack.eps=4_255,run.seed=0"
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "attack.eps=4_255,run.seed=1" / "events.jsonl").exists():
        time.sleep(0.05)
    driver.kill()
    driver.wait()
    finished_before = (first / "events.jsonl").read_text()
    assert '"run_finished"' in finished_before
    deadline = time.time() + 30  # the orphaned run got SIGTERM with its driver: wait until it let go
    from demtui.lock import holder_if_locked

    while time.time() < deadline and holder_if_locked(out / "attack.eps=4_255,run.seed=1"):
        time.sleep(0.1)
    res = CliRunner().invoke(app, ["run", "--headless", "--json", "--quiet", "--out", str(out), "--resume",
                                   "--executor", "local", "--jobs", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    numbers = {e["label"]: {k: v for k, v in e["summary"].items() if k not in TIMING} for e in doc["sweep"]}
    assert numbers == reference
    assert (first / "events.jsonl").read_text() == finished_before  # a finished cell is never re-run


def test_a_bad_cell_is_reported_in_the_table_and_not_retried(tmp_path) -> None:
    out = tmp_path / "bad"
    res = CliRunner().invoke(app, ["run", "--headless", "--quiet", "--json", "--out", str(out), "--sweep",
                                   "run.device=cpu,cuda:99", "--executor", "local", "--jobs", "2",
                                   *[a for a in TINY_FLAGS if a not in ("--device", "cpu")]])
    assert res.exit_code == 3, res.output
    entries = {e["values"]["run.device"]: e for e in json.loads(res.stdout)["sweep"]}
    assert entries["cpu"]["status"] == "finished"
    bad = entries["cuda:99"]
    assert bad["status"] == "failed" and bad["attempts"] == 1 and "bad input" in bad["message"]
    assert "cuda:99" in bad["message"]
    assert "cuda:99" in (out / "sweep.md").read_text()  # the reason is in the table


def test_reproduce_tiny_writes_md_csv_tex_png_with_paper_values(tmp_path) -> None:
    out = tmp_path / "t6"
    # A small victim that is still a classifier (a 1-epoch one makes repair collapse, as it should)
    small = {"dataset.train_size": 2000, "dataset.test_size": 200, "model.width": 8, "victim.epochs": 6,
             "victim.batch_size": 64, "attack.iterations": 20, "defense.epochs": 1, "defense.refine_epochs": 0,
             "run.eval_samples": 100, "run.attack_samples": 100, "run.targets": 1, "run.device": "cpu"}
    flags = [arg for key, value in small.items() for arg in ("--set", f"{key}={value}")]
    res = CliRunner().invoke(app, ["reproduce", "table6", "--preset", "tiny", "--out", str(out), "--quiet", *flags])
    assert res.exit_code == 0, res.output
    md = (out / "table.md").read_text()
    assert "SR after (ours)" in md and "SR after (paper)" in md and "0.115" in md  # paper: 15/255 → 0.115
    csv_text = (out / "table.csv").read_text().splitlines()
    assert csv_text[0].startswith("ε,AAcc before (ours),AAcc before (ours) std,AAcc before (paper)")
    assert csv_text[3].split(",")[-1] == "0.115"  # a number, as the paper prints it
    tex = (out / "table.tex").read_text()
    assert r"\toprule" in tex and "0.115" in tex
    assert (out / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rebuilt = CliRunner().invoke(app, ["report", str(out)])  # the table rebuilds from the run directories
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (out / "table.md").read_text() == md
