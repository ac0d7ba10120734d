import json

import pytest

from demtui.errors import RunError
from demtui.events import SCHEMA_VERSION, EventBus, EventTail, JsonlWriter, read_events


def test_bus_writes_versioned_sequenced_events(tmp_path):
    path = tmp_path / "events.jsonl"
    bus = EventBus(run_id="r1")
    writer = JsonlWriter(path)
    bus.subscribe(writer)
    bus.emit("stage_started", stage="attack")
    bus.emit("log", level="info", message="hello")
    writer.close()
    events = read_events(path)
    assert [e["seq"] for e in events] == [0, 1]
    assert all(e["v"] == SCHEMA_VERSION and e["run"] == "r1" for e in events)
    assert events[0]["stage"] == "attack"


def test_bus_rejects_events_missing_fields():
    with pytest.raises(ValueError):
        EventBus(run_id="r").emit("stage_started")


def test_a_broken_listener_never_stops_the_run():
    seen = []
    bus = EventBus(run_id="r")
    bus.subscribe(lambda e: 1 / 0)
    bus.subscribe(seen.append)
    bus.emit("log", level="info", message="x")
    assert len(seen) == 1


def test_truncated_last_line_is_dropped_but_corrupt_middle_line_raises(tmp_path):
    path = tmp_path / "events.jsonl"
    good = json.dumps({"v": 1, "type": "log", "level": "info", "message": "a"})
    path.write_text(good + "\n" + '{"v": 1, "type": "lo')
    assert len(read_events(path)) == 1
    path.write_text(good + "\nnot json at all\n" + good + "\n")
    with pytest.raises(RunError, match="corrupt at line 2"):
        read_events(path)
    assert len(read_events(path, strict=False)) == 2


def test_tail_handles_partial_lines_and_growth(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []
    with open(path, "w") as fh:
        fh.write('{"type": "log", "message": "one"}\n{"type": "lo')
    assert [e["message"] for e in tail.read_new()] == ["one"]
    with open(path, "a") as fh:
        fh.write('g", "message": "two"}\n')
    assert [e["message"] for e in tail.read_new()] == ["two"]
    with open(path, "a") as fh:
        fh.write("garbage\n")
    assert tail.read_new() == [] and tail.bad_lines == 1
