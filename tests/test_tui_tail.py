"""The TUI's event follower without a screen: EventTail + RunView, run folders, the executor."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from demtui.events import EventTail
from demtui.executors.base import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING
from demtui.executors.local import LocalProcessExecutor, default_command
from demtui.tui.runinfo import compare_table, export_compare, read_run_info, scan_runs, to_csv, to_markdown
from demtui.tui.runview import RunView
from demtui.tui.sample import write_sample_run


def _line(event: dict) -> bytes:
    return (json.dumps(event) + "\n").encode()


def _event(seq: int, type: str, **fields) -> dict:
    return {"v": 1, "seq": seq, "time": 100.0 + seq, "run": "r-1", "type": type, **fields}


def test_partial_lines_are_held_until_complete(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []  # no file yet
    line = _line(_event(0, "stage_started", stage="attack"))
    path.write_bytes(line[:10])
    assert tail.read_new() == []
    with open(path, "ab") as fh:
        fh.write(line[10:-1])  # all but the newline
    assert tail.read_new() == []
    with open(path, "ab") as fh:
        fh.write(b"\n")
    assert [e["stage"] for e in tail.read_new()] == ["attack"]
    assert tail.bad_lines == 0


def test_growing_file_folds_into_the_same_view_as_a_whole_read(tmp_path: Path) -> None:
    """Feed a real-shaped run in odd-sized chunks: the live view ends where a full read does."""
    sample = write_sample_run(tmp_path / "sample")
    data = (sample / "events.jsonl").read_bytes()
    growing = tmp_path / "grow" / "events.jsonl"
    growing.parent.mkdir()
    tail, live = EventTail(growing), RunView("grow")
    seen_versions = []
    for start in range(0, len(data), 777):
        with open(growing, "ab") as fh:
            fh.write(data[start:start + 777])
        live.apply(tail.read_new(max_bytes=1000), tail.bad_lines)
        seen_versions.append(live.version)
    while tail.offset < len(data):  # batches are capped: drain the rest
        live.apply(tail.read_new(max_bytes=1000), tail.bad_lines)
    whole = RunView("whole")
    whole.apply(EventTail(sample / "events.jsonl").read_new())
    assert live.status == whole.status == "finished"
    assert live.target_rows() == whole.target_rows()
    assert live.histograms == whole.histograms and len(live.histograms) == 12
    assert live.losses["defend"] == whole.losses["defend"]
    assert seen_versions == sorted(seen_versions)
    assert len(set(seen_versions)) > 10  # it changed while the file grew, not only at the end


def test_view_tracks_stages_eta_results_and_histograms() -> None:
    view = RunView("r")
    spec = {"run": {"targets": [1, 2], "mode": "targeted"}}
    events = [
        _event(0, "run_started", spec=spec, device="cpu", resumed=False, version="0", stages=["prepare", "attack"]),
        _event(1, "stage_started", stage="attack"),
        _event(5, "progress", stage="attack", done=50, total=100, info={"loss": 1.5}),
    ]
    view.apply(events)
    st = view.stages["attack"]
    assert view.fraction(st) == pytest.approx(0.25)  # half of the first of two targets
    assert view.eta(st) == pytest.approx(12.0)  # 4 s for a quarter → 12 s left
    view.apply([_event(6, "result", phase="attack", target="1", metrics={"sr": 0.8, "aacc": 0.2})])
    assert view.fraction(st) == pytest.approx(0.5)
    assert view.target_rows()[0][:2] == ("1", "0.800") and view.target_rows()[1][1] == "—"
    view.apply([_event(7, "entropy", phase="before", role="deep2", layer="gap", source="clean", target=None,
                       mean=4.0, bins=3, lo=3.0, hi=5.0, counts=[1, 2, 3])])
    assert view.histograms[("before", "deep2")].clean == [1, 2, 3]
    assert view.losses["attack"] == [1.5]


def test_foreign_and_truncated_files_are_reported_not_raised(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_bytes(b"not json at all\n{\"hello\": 1}\n[1, 2]\n\xff\xfe binary\n")
    tail, view = EventTail(foreign), RunView("foreign")
    view.apply(tail.read_new(), tail.bad_lines)
    assert view.bad_lines == 4 and view.status == "waiting"
    assert any("does not look like a demtui" in w for w in view.warnings())
    # a well-formed line of a known type with missing fields is skipped and counted
    view.apply([{"type": "entropy", "phase": "before"}, {"type": "result"}, {"type": "brand_new_type"}])
    assert view.skipped_events == 2
    # a run killed mid-write: the half line is never an event and never an error
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(_line(_event(0, "run_started", spec={}, device="cpu", resumed=False, version="0", stages=[]))
                    + b'{"v":1,"seq":1,"type":"stage_sta')
    tail = EventTail(cut)
    view = RunView("cut")
    view.apply(tail.read_new(), tail.bad_lines)
    assert view.status == "running" and view.bad_lines == 0
    view.mark_process_exit(FAILED, "run process ended (killed by signal 9)")
    assert view.status == "failed" and "signal 9" in view.error


def test_newer_schema_and_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_line({**_event(0, "log", level="info", message="hi"), "v": 99}) * 3)
    tail, view = EventTail(path), RunView("new")
    view.apply(tail.read_new(), tail.bad_lines)
    assert view.newer_schema and view.log_total == 3
    path.write_bytes(_line(_event(0, "log", level="info", message="again")))  # shorter: replaced
    assert [e["message"] for e in tail.read_new()] == ["again"]


def test_run_folder_scan_statuses_compare_and_export(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_sample_run(runs / "a-full")
    write_sample_run(runs / "b-weak", strength=0.3, attack="fgsm-uap")
    write_sample_run(runs / "c-failed", stop_after="attack", ending="failed")
    write_sample_run(runs / "d-live", stop_after="analyse")
    (runs / "e-garbage").mkdir()
    (runs / "e-garbage" / "events.jsonl").write_text("garbage\n")
    (runs / "not-a-run").mkdir()
    infos = {i.name: i for i in scan_runs(runs)}
    assert set(infos) == {"a-full", "b-weak", "c-failed", "d-live", "e-garbage"}
    assert [infos[n].status for n in ("a-full", "c-failed", "d-live", "e-garbage")] == [
        "finished", "failed", "running?", "unreadable"]
    assert "collapsed" in infos["c-failed"].problem
    assert infos["c-failed"].summary["sr_before"] is not None  # partial summary from results.json
    header, rows = compare_table([infos["a-full"], infos["b-weak"]])
    assert header == ["Metric", "a-full", "b-weak"]
    assert ["Attack", "df-uap", "fgsm-uap"] in rows
    md, csv_path = export_compare([infos["a-full"], infos["b-weak"]], tmp_path, stem="cmp")
    assert md.read_text().count("|") > 20 and "SR (same UAPs) — before" in md.read_text()
    assert csv_path.read_text().splitlines()[0] == "Metric,a-full,b-weak"
    assert to_markdown(["a|b"], [["x"]]).startswith("| a\\|b |") and to_csv(["a"], [["1,2"]]) == 'a\n"1,2"\n'
    assert read_run_info(runs / "e-garbage").summary["sr_before"] is None


FAKE_RUN = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))
print("working", flush=True)
mode = sys.argv[1]
if mode == "fail":
    print("error: Device 'cuda:7' does not exist here (no CUDA device is visible); use --device cpu or auto.")
    sys.exit(2)
time.sleep(0.3 if mode == "quick" else 30)
"""


def _fake(mode_of):
    def command(run_dir: Path, spec: Path | None, device: str, resume: bool) -> list[str]:
        return [sys.executable, "-c", FAKE_RUN, mode_of(run_dir)]
    return command


def _wait(executor: LocalProcessExecutor, cond, timeout: float = 15.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        executor.poll()
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_executor_queues_per_device_cancels_and_reports_dead_processes(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(command=_fake(lambda d: d.name.split("-")[0]))
    slow = ex.submit("[run]\n", tmp_path / "slow-1", device="cpu")
    queued = ex.submit("[run]\n", tmp_path / "quick-2", device="cpu")
    other = ex.submit("[run]\n", tmp_path / "fail-3", device="cuda:7")
    assert (slow.status, queued.status, other.status) == (RUNNING, QUEUED, RUNNING)  # one per device
    assert (tmp_path / "slow-1" / "submitted.toml").read_text() == "[run]\n"
    with pytest.raises(RuntimeError):
        ex.submit(None, tmp_path / "slow-1", device="cpu")
    _wait(ex, lambda: other.status == FAILED)
    assert "bad input" in other.message and "cuda:7" in other.message and other.returncode == 2
    _wait(ex, lambda: "working" in (tmp_path / "slow-1" / "run.log").read_text())
    slow.cancel()
    _wait(ex, lambda: slow.status == CANCELLED)
    assert slow.returncode == 130
    _wait(ex, lambda: queued.status == FINISHED)  # the queue moved on once cpu was free
    last = ex.submit(None, tmp_path / "slow-4", device="cpu")
    gone = ex.submit(None, tmp_path / "slow-5", device="cpu")
    gone.cancel()
    assert gone.status == CANCELLED and gone.message == "cancelled before it started"
    ex.shutdown(cancel=True, wait=5)
    assert last.status == CANCELLED and not ex.active()


def test_executor_kill_and_command_line(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(command=_fake(lambda d: "slow"))
    h = ex.submit(None, tmp_path / "k", device="cpu")
    _wait(ex, lambda: "working" in (tmp_path / "k" / "run.log").read_text())
    h._job.send_signal(signal.SIGKILL)  # the process dies under us
    _wait(ex, lambda: h.status == FAILED)
    assert "killed by signal 9" in h.message
    cmd = default_command(tmp_path / "r", tmp_path / "r" / "submitted.toml", "cpu", False)
    assert cmd[3:] == ["run", "--headless", "--quiet", "--out", str(tmp_path / "r"), "--spec",
                       str(tmp_path / "r" / "submitted.toml"), "--device", "cpu"]
    assert default_command(tmp_path / "r", None, "cuda:0", True)[-3:] == ["--resume", "--device", "cuda:0"]


def test_gpus_are_found_with_nvidia_smi_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from demtui.devices import detect_devices

    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaa)'\n"
                    "echo 'GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbb)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [d.value for d in detect_devices()][:4] == ["auto", "cpu", "cuda:0", "cuda:1"]
    assert detect_devices()[3].label == "cuda:1 NVIDIA A100-SXM4-40GB"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # CUDA renumbers what it can see
    assert [d.label for d in detect_devices() if d.value.startswith("cuda")] == ["cuda:0 NVIDIA A100-SXM4-40GB"]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert [d.value for d in detect_devices()][:2] == ["auto", "cpu"]
