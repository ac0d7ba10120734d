"""Stopping a run this window did not launch: only a live demtui process on this host is signalled."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from demtui.tui.foreign import stop_foreign_run, this_host

#: A stand-in run process: its command line says demtui; SIGTERM makes it exit with 42.
FAKE_RUN = ("import signal, sys, time  # demtui run --headless\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")


def start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_no_pid_or_another_host_is_refused_with_a_reason() -> None:
    assert "name no process" in (stop_foreign_run(None, this_host()) or "")
    problem = stop_foreign_run(12345, "some-other-machine")
    assert problem is not None and "some-other-machine" in problem and "12345" in problem


def test_a_dead_process_is_reported_not_signalled() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert "no longer alive" in (stop_foreign_run(proc.pid, this_host()) or "")


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc to read command lines")
def test_a_reused_pid_that_is_not_demtui_is_left_alone() -> None:
    proc = start("import time; print('ready', flush=True); time.sleep(60)")
    try:
        assert "no longer a demtui run" in (stop_foreign_run(proc.pid, this_host()) or "")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_first_then_sigkill() -> None:
    proc = start(FAKE_RUN)
    assert stop_foreign_run(proc.pid, this_host()) is None
    assert proc.wait(10) == 42  # the engine's clean-cancel path runs on SIGTERM
    stubborn = start(FAKE_RUN.replace("sys.exit(42)", "None"))
    assert stop_foreign_run(stubborn.pid, None) is None  # older events carry no host: this one is local
    assert stop_foreign_run(stubborn.pid, this_host(), kill=True) is None
    assert stubborn.wait(10) == -signal.SIGKILL
