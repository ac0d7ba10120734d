"""Stopping a run this window did not launch (`demtui run --headless` in another terminal).

The run's own ``run_started`` event names its process id and host. A pid alone is not
enough to signal safely: the process may have ended and the number been reused, or the
run may live on another machine that shares the runs folder. So we signal only a live
process on this host whose command line is a demtui run (where the OS lets us read it),
and we send SIGTERM, which the engine turns into a clean cancel that keeps finished
stages; a second request sends SIGKILL, as for runs launched here.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path


def this_host() -> str:
    return socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else: the signal below will say so
    return True


def _command_line(pid: int) -> str | None:
    """The process's argv joined by spaces, or None where the OS does not expose it."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def process_gone(pid: int | None, host: str | None) -> bool:
    """Whether a run's process is known to be gone: on this host, dead or its pid reused.

    False when it cannot be told from here (no pid in the events, or another host)."""
    if not pid or (host and host != this_host()) or pid == os.getpid():
        return False
    if not _alive(pid):
        return True
    command = _command_line(pid)
    return command is not None and "demtui" not in command


def stop_foreign_run(pid: int | None, host: str | None, *, kill: bool = False) -> str | None:
    """Signal the run's process; returns None on success, else why it cannot be stopped from here."""
    if not pid:
        return "its events name no process (a run from an older demtui); stop it where it runs (Ctrl-C)"
    if host and host != this_host():
        return f"it runs on host {host}; stop it there (Ctrl-C, or SIGTERM to process {pid})"
    if pid == os.getpid():
        return "its events name this window's own process; nothing was signalled"
    if not _alive(pid):
        return f"its process {pid} is no longer alive; it was killed without writing its last event"
    command = _command_line(pid)
    if command is not None and "demtui" not in command:
        return f"process {pid} is no longer a demtui run (the number was reused); nothing was signalled"
    sig = signal.SIGKILL if kill and sys.platform != "win32" else signal.SIGTERM
    try:
        os.kill(pid, sig)
    except PermissionError:
        return f"process {pid} belongs to another user; stop it where it runs"
    except ProcessLookupError:
        return f"its process {pid} ended a moment ago"
    return None
