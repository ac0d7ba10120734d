"""Is a process alive, and is it a demtui run? Torch-free, for locks, executors and the TUI.

A pid alone is not proof: a process may have ended and its number been reused, or it may
live on another host that shares the runs folder. Callers combine the three answers
here (same host, alive, a demtui command line where the OS shows it).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True if a process with this number exists on this host (owned by anyone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def command_line(pid: int) -> str | None:
    """The process's argv joined by spaces, or None where the OS does not expose it."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot, from /proc), or None where unknown.

    Together with the pid it names one process for good: a reused pid has another start.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def same_process_alive(pid: int, started: str | None) -> bool:
    """Is process ``pid`` (started at ``started``, when known) still running on this host?"""
    if not pid_alive(pid):
        return False
    if started is None:
        return True
    now = start_time(pid)
    return now is None or now == started
