"""ObserverHub: hands every run event to the observers on one thread of their own.

The run's thread only puts the event on a bounded queue (never waits: when the
observers fall behind, events are dropped and counted, because events.jsonl already
holds every one of them). An observer that raises is detached and reported once; the
run goes on unchanged. Notes from the observer thread reach the run's log as ``log``
events, emitted from the run's own thread (the event bus is not thread-safe), and never
after the run's last event, so events.jsonl still ends with run_finished.
"""

from __future__ import annotations

import queue
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

TERMINAL = {"run_finished": "finished", "run_failed": "failed", "run_cancelled": "cancelled"}
#: Events the queue holds before it drops (a run emits a few hundred; progress is throttled).
QUEUE_SIZE = 10_000
#: Seconds close() waits for the observers to finish (flush files, upload) before leaving them.
CLOSE_TIMEOUT = 120.0


class _Stop:
    def __init__(self, status: str) -> None:
        self.status = status


class ObserverHub:
    """Fan-out of one run's events to ``observers`` (name → object with ``on_event``)."""

    def __init__(self, observers: dict[str, Any], *, queue_size: int = QUEUE_SIZE,
                 close_timeout: float = CLOSE_TIMEOUT, sink: Callable[[str], None] | None = None) -> None:
        self.observers = dict(observers)
        self.close_timeout = close_timeout
        self.dropped = 0
        self.failures: dict[str, str] = {}  # name → traceback of the failure that detached it
        self.status = "failed"  # until a terminal event says otherwise
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._emit: Callable[..., Any] | None = None
        self._emitting = False
        self._ended = False
        self._sink = sink or (lambda line: print(f"demtui: {line}", file=sys.stderr))
        self._thread = threading.Thread(target=self._loop, name="demtui-observers", daemon=True)
        self._thread.start()

    # -- the run's thread --------------------------------------------------------------
    def attach(self, bus: Any) -> "ObserverHub":
        """Subscribe to ``bus``; notes are emitted on it as warnings."""
        self._emit = bus.emit
        bus.subscribe(self)
        return self

    def __call__(self, event: dict[str, Any]) -> None:
        terminal = event.get("type") in TERMINAL
        if terminal:
            self.status = TERMINAL[event["type"]]
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            if terminal:  # the run is over: waiting a little for the last event costs it nothing
                try:
                    self._queue.put(event, timeout=5)
                except queue.Full:
                    self.dropped += 1
            else:
                self.dropped += 1
                if self.dropped == 1:
                    self.note("observers are falling behind, so some events are not passed to them (events.jsonl "
                              "keeps every one); their count is reported when the run ends")
        if terminal:
            self._ended = True
        elif not self._emitting:
            self._flush_notes()

    def note(self, message: str) -> None:
        """Queue one sentence for the run's log (any thread)."""
        with self._lock:
            self._notes.append(message)

    def _flush_notes(self) -> None:
        with self._lock:
            notes, self._notes = self._notes, []
        if not notes:
            return
        if self._emit is None or self._ended:
            for n in notes:
                self._sink(n)
            return
        self._emitting = True
        try:
            for n in notes:
                self._emit("log", level="warning", message=n[0].upper() + n[1:] + ("" if n.endswith(".") else "."))
        finally:
            self._emitting = False

    def close(self) -> None:
        """Let the observers finish (close(status)) and stop the thread; notes left go to stderr."""
        self._ended = True
        try:
            self._queue.put(_Stop(self.status), timeout=5)
        except queue.Full:
            pass
        try:
            self._thread.join(self.close_timeout)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for trackers (the thread is a daemon)
            self.note("stopped waiting for observers (Ctrl-C); what they had not written is missing from them")
        if self._thread.is_alive() and self.observers:
            self.note(f"observer(s) {', '.join(self.observers)} still busy {self.close_timeout:.0f} s after the run "
                      "ended; left behind (the run's own files are complete)")
        if self.dropped:
            self.note(f"{self.dropped} event(s) were not passed to observers because they fell behind "
                      "(events.jsonl has them all)")
        self._flush_notes()

    # -- the observer thread -----------------------------------------------------------
    def _loop(self) -> None:
        _lower_priority()
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                for name, obs in list(self.observers.items()):
                    close = getattr(obs, "close", None)
                    if callable(close):
                        self._call(name, close, item.status)
                return
            for name, obs in list(self.observers.items()):
                self._call(name, obs.on_event, item)

    def _call(self, name: str, fn: Callable[..., Any], arg: Any) -> None:
        try:
            fn(arg)
        except Exception as exc:  # noqa: BLE001 - an observer must never touch the run
            self.observers.pop(name, None)
            self.failures[name] = traceback.format_exc()
            text = ((str(exc).strip().splitlines() or [""])[0]).rstrip(".") or "no message"
            self.note(f"observer '{name}' failed ({type(exc).__name__}: {text}) and was detached; the run goes "
                      "on and its own files are complete")


#: How much nicer (Linux niceness) the observer thread, and any process a tracker starts from
#: it (W&B's service), is than the run: on a busy machine the stages get the CPU first.
NICENESS = 10


def _lower_priority() -> None:
    """Make this thread (on Linux, a thread is its own schedulable task) yield the CPU to the run."""
    import os

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICENESS))
    except (AttributeError, OSError):  # not Linux, or not allowed: the thread keeps the run's priority
        pass
