"""The grid driver and the executor layer without torch: fake runs, real bookkeeping."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from demtui.errors import SpecError
from demtui.executors.base import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, RunHandle
from demtui.executors.local import LocalProcessExecutor
from demtui.grid import Cell, Grid, finished_summary, rebuild_table
from demtui.launch import choose_executor


class FakeExecutor:
    """Finishes a run at the first poll by writing what the engine would; labels in ``fail`` fail."""

    name = "fake"

    def __init__(self, fail: dict[str, tuple[int, str]] | None = None, interrupt_after: int | None = None) -> None:
        self.fail = fail or {}
        self.handles: list[RunHandle] = []
        self.submitted: list[str] = []
        self.interrupt_after = interrupt_after
        self.polls = 0

    def submit(self, spec_toml, run_dir, *, device="auto", resume=False, label=""):
        h = RunHandle(run_dir=Path(run_dir), device=device, resume=resume, label=label, _executor=self)
        self.handles.append(h)
        self.submitted.append(label)
        return h

    def poll(self):
        self.polls += 1
        if self.interrupt_after is not None and self.polls > self.interrupt_after:
            raise KeyboardInterrupt
        changed = []
        for h in self.handles:
            if h.status != QUEUED:
                continue
            h.status, h.attempts = RUNNING, 1
            if h.label in self.fail:
                h.finish(*self.fail[h.label])
            else:
                h.run_dir.mkdir(parents=True, exist_ok=True)
                summary = {"sr_before": 0.5, "sr_after": 0.01, "cacc_before": 1.0}
                (h.run_dir / "results.json").write_text(json.dumps({"stages": {}, "summary": summary}))
                (h.run_dir / "events.jsonl").write_text(
                    json.dumps({"type": "run_started", "time": time.time()}) + "\n"
                    + json.dumps({"type": "run_finished", "summary": summary}) + "\n")
                h.finish(0)
            changed.append(h)
            if self.interrupt_after is not None:
                break
        return changed

    def cancel(self, h):
        if h.status in (QUEUED, RUNNING):
            h.status = CANCELLED

    def active(self):
        return [h for h in self.handles if h.status in (QUEUED, RUNNING)]

    def shutdown(self, cancel=True):
        if cancel:
            for h in self.active():
                self.cancel(h)


def _cells(*labels: str) -> list[Cell]:
    return [Cell(label=lab, values={"attack.eps": lab}, spec_toml="[run]\n") for lab in labels]


def test_grid_records_reasons_and_resume_runs_only_the_unfinished(tmp_path: Path) -> None:
    first = FakeExecutor(fail={"b": (2, "Target class 99 does not exist; this dataset has classes 0–9.")})
    grid = Grid(tmp_path, _cells("a", "b", "c"), first, axes={"attack.eps": ["a", "b", "c"]}, poll_seconds=0)
    assert grid.run(resume=False) == FAILED
    assert [c.status for c in grid.cells] == [FINISHED, FAILED, FINISHED]
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["version"] == 2 and manifest["status"] == FAILED
    assert manifest["sweep"][1]["message"].startswith("bad input: Target class 99")
    table = (tmp_path / "sweep.md").read_text()
    assert "bad input: Target class 99" in table and "| a | finished |" in table
    with pytest.raises(SpecError, match="--resume"):  # finished work is never overwritten
        Grid(tmp_path, _cells("a", "b", "c"), FakeExecutor(), axes={}, poll_seconds=0).run(resume=False)
    again = FakeExecutor()
    grid2 = Grid(tmp_path, _cells("a", "b", "c"), again, axes={"attack.eps": ["a", "b", "c"]}, poll_seconds=0)
    assert grid2.run(resume=True) == FINISHED
    assert again.submitted == ["b"]  # only the unfinished cell ran again
    assert finished_summary(tmp_path / "a") == {"sr_before": 0.5, "sr_after": 0.01, "cacc_before": 1.0}
    assert "| b | finished |" in rebuild_table(tmp_path).read_text()


def test_ctrl_c_cancels_every_cell_and_keeps_the_finished_ones(tmp_path: Path) -> None:
    ex = FakeExecutor(interrupt_after=1)
    grid = Grid(tmp_path, _cells("a", "b", "c"), ex, axes={}, poll_seconds=0)
    assert grid.run(resume=False) == CANCELLED
    statuses = {c.label: c.status for c in grid.cells}
    assert statuses["a"] == FINISHED and statuses["b"] == statuses["c"] == CANCELLED
    assert json.loads((tmp_path / "sweep.json").read_text())["status"] == CANCELLED


def test_one_driver_per_grid_folder(tmp_path: Path) -> None:
    from demtui.lock import DirLock, LockedError

    with DirLock(tmp_path, "grid.lock"):
        with pytest.raises(LockedError, match="is being written by process"):
            Grid(tmp_path, _cells("a"), FakeExecutor(), axes={}, poll_seconds=0).run(resume=False)


def test_executor_shortcuts_imply_their_executor() -> None:
    assert choose_executor({}, None, None, None, None).inline
    assert choose_executor({}, None, 4, None, None).name == "local"
    assert choose_executor({}, None, None, "cuda:0,cuda:1", None).params == {"devices": "cuda:0,cuda:1"}
    ray = choose_executor({"name": "ray", "num_cpus": 2}, None, None, None, "auto")
    assert ray.name == "ray" and ray.params == {"num_cpus": 2, "address": "auto"}
    assert choose_executor({"name": "ray"}, "local", 2, None, None).name == "local"  # the flag wins
    with pytest.raises(SpecError, match="--ray-address only applies"):
        choose_executor({}, "local", None, None, "auto")


SLEEP = "import sys, time; print('working', flush=True); time.sleep(float(sys.argv[1]))"


def _fake(seconds: float):
    return lambda run_dir, spec, device, resume: [sys.executable, "-c", SLEEP, str(seconds), device]


def _wait(ex, cond, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        ex.poll()
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_local_executor_spreads_auto_runs_over_device_slots(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(jobs=3, devices=["cuda:0", "cuda:1"], per_device=1, gpus=2, command=_fake(2))
    hs = [ex.submit(None, tmp_path / f"r{i}", device="auto") for i in range(3)]
    assert [h.status for h in hs] == [RUNNING, RUNNING, QUEUED]  # one per GPU
    assert sorted(h.device for h in hs[:2]) == ["cuda:0", "cuda:1"]
    _wait(ex, lambda: all(h.status == FINISHED for h in hs))
    assert hs[2].device in ("cuda:0", "cuda:1")
    ex.shutdown()


def test_local_executor_retries_a_killed_run_with_resume(tmp_path: Path) -> None:
    import signal

    seen: list[bool] = []

    def command(run_dir, spec, device, resume):
        seen.append(resume)
        return [sys.executable, "-c", SLEEP, "0.2" if resume else "30", device]

    ex = LocalProcessExecutor(command=command, max_retries=1)
    h = ex.submit("[run]\n", tmp_path / "r", device="cpu")
    _wait(ex, lambda: "working" in (tmp_path / "r" / "run.log").read_text())
    h._job.send_signal(signal.SIGKILL)  # the worker is lost, not the input bad
    _wait(ex, lambda: h.status == FINISHED)
    assert seen == [False, True] and h.attempts == 2
