"""The observer hub on its own (no torch, no trackers): order, failure, back-pressure, close."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from demtui.events import EventBus
from demtui.observers.hub import ObserverHub


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed: str | None = None

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def close(self, status: str) -> None:
        self.closed = status


class Raiser:
    def __init__(self, after: int) -> None:
        self.after, self.seen = after, 0

    def on_event(self, event: dict[str, Any]) -> None:
        self.seen += 1
        if self.seen > self.after:
            raise RuntimeError("tracker went away\nsecond line")


def _bus(hub: ObserverHub) -> tuple[EventBus, list[dict[str, Any]]]:
    written: list[dict[str, Any]] = []
    bus = EventBus(run_id="r-1")
    bus.subscribe(written.append)  # stands in for events.jsonl
    hub.attach(bus)
    return bus, written


def test_every_event_reaches_every_observer_in_order_and_close_gets_the_status() -> None:
    a, b = Recorder(), Recorder()
    hub = ObserverHub({"a": a, "b": b})
    bus, written = _bus(hub)
    for i in range(50):
        bus.emit("log", level="info", message=str(i))
    bus.emit("run_finished", summary={}, seconds=1.0)
    hub.close()
    assert [e["seq"] for e in a.events] == list(range(51)) == [e["seq"] for e in b.events]
    assert a.closed == b.closed == "finished"
    assert len(written) == 51 and hub.dropped == 0


def test_a_raising_observer_is_detached_and_reported_once_in_the_run_log() -> None:
    good, bad = Recorder(), Raiser(after=2)
    hub = ObserverHub({"good": good, "bad": bad})
    bus, written = _bus(hub)
    for i in range(20):
        bus.emit("progress", stage="attack", done=i, total=20, info={"loss": 1.0})
        if i == 10:  # let the observer thread reach the failure, so the note is emitted during the run
            _wait(lambda: "bad" not in hub.observers)
    bus.emit("run_finished", summary={}, seconds=1.0)
    hub.close()
    notes = [e for e in written if e["type"] == "log"]
    assert len(notes) == 1 and notes[0]["level"] == "warning"
    assert notes[0]["message"] == ("Observer 'bad' failed (RuntimeError: tracker went away) and was detached; the run "
                                   "goes on and its own files are complete.")
    assert bad.seen == 3 and "bad" not in hub.observers and "tracker went away" in hub.failures["bad"]
    assert written[-1]["type"] == "run_finished"  # notes never come after the last event
    assert len(good.events) == len(written) and good.closed == "finished"


def _wait(condition: Any) -> None:
    import time

    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)


def test_a_full_queue_drops_and_counts_without_blocking_the_run() -> None:
    gate = threading.Event()

    class Stuck(Recorder):
        def on_event(self, event: dict[str, Any]) -> None:
            gate.wait(10)
            super().on_event(event)

    stuck = Stuck()
    sink: list[str] = []
    hub = ObserverHub({"stuck": stuck}, queue_size=3, sink=sink.append)
    bus, written = _bus(hub)
    for i in range(20):  # returns at once although the observer is stuck
        bus.emit("progress", stage="attack", done=i, total=20, info={})
    assert hub.dropped >= 15
    warnings = [e for e in written if e["type"] == "log"]
    assert len(warnings) == 1 and "falling behind" in warnings[0]["message"]
    gate.set()
    bus.emit("run_finished", summary={}, seconds=1.0)
    hub.close()
    assert stuck.events[-1]["type"] == "run_finished"  # the last event is waited for, not dropped
    assert sink == [f"{hub.dropped} event(s) were not passed to observers because they fell behind (events.jsonl "
                    "has them all)"]


def test_a_failure_while_closing_goes_to_stderr_not_after_the_last_event(capsys: pytest.CaptureFixture[str]) -> None:
    class BadClose(Recorder):
        def close(self, status: str) -> None:
            raise OSError("disk full")

    hub = ObserverHub({"x": BadClose()})
    bus, written = _bus(hub)
    bus.emit("run_cancelled", stage="attack")
    hub.close()
    assert written[-1]["type"] == "run_cancelled"
    assert "observer 'x' failed (OSError: disk full) and was detached" in capsys.readouterr().err


def test_the_observer_thread_is_nicer_than_the_run() -> None:
    import os
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread niceness is Linux's")
    seen: dict[str, int] = {}

    class Nice(Recorder):
        def on_event(self, event: dict[str, Any]) -> None:
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    hub = ObserverHub({"n": Nice()})
    bus, _ = _bus(hub)
    bus.emit("run_finished", summary={}, seconds=1.0)
    hub.close()
    assert seen["nice"] > os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_shared_mapping_hand_computed(tmp_path: Any) -> None:
    from demtui.observers.mapping import Histogram, Mapper, Scalar, flatten

    m = Mapper(tmp_path)
    m.feed({"type": "run_started", "spec": {"run": {"targets": [1, 2], "seed": 0}, "attack": {"name": "df-uap"}}})
    assert m.params() == {"run.targets": "1,2", "run.seed": 0, "attack.name": "df-uap"}
    steps = []
    for event in ({"type": "progress", "stage": "attack", "done": 5, "info": {"loss": 2.0, "note": "x"}},
                  {"type": "progress", "stage": "attack", "done": 10, "info": {"loss": 1.0}},
                  {"type": "result", "phase": "attack", "target": "1", "metrics": {"sr": 0.5, "aacc": None}},
                  {"type": "progress", "stage": "attack", "done": 10, "info": {"loss": 3.0}}):  # target 2 restarts
        steps += [(r.tag, r.step, r.value) for r in m.feed(event) if isinstance(r, Scalar)]
    assert steps == [("attack/loss", 5, 2.0), ("attack/loss", 10, 1.0), ("sr/before/target_1", 0, 0.5),
                     ("attack/loss", 20, 3.0)]
    [h] = m.feed({"type": "entropy", "phase": "after", "role": "deep2", "source": "clean", "target": None,
                  "mean": 1.5, "bins": 2, "lo": 1.0, "hi": 2.0, "counts": [1, 1]})
    assert isinstance(h, Histogram) and (h.tag, h.step, h.edges, h.num) == ("entropy/deep2/clean", 1, [1.0, 1.5, 2.0], 2)
    assert h.sums() == (3.0, 1.25 ** 2 + 1.75 ** 2)  # mean × n; squares of the bin centres
    final = m.feed({"type": "run_finished", "summary": {"sr_before": 0.5, "mode": "targeted", "sr_after": None}})
    assert [(r.tag, r.value) for r in final] == [("final/sr_before", 0.5)]
    assert flatten({"a": {"b": None, "c": [1]}}) == {"a.b": "", "a.c": "1"}
