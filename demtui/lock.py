"""One writer per run directory (and per grid): a lock file held for the writer's lifetime.

The lock is an OS file lock (``flock``) on ``<dir>/run.lock``, so the kernel frees it when
its process dies, even under kill -9, and a pid that was reused cannot keep it. The file
also says who holds it (pid, host, start, heartbeat) for the one-sentence refusal. On a
shared file system whose locks do not reach other hosts, that record decides: a holder
on another host whose heartbeat is fresh keeps the directory; one silent for longer than
``STALE_AFTER`` seconds is taken over with a message.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from demtui.errors import DemtuiError, SpecError
from demtui.procs import same_process_alive, start_time, this_host

LOCK_FILE = "run.lock"
HEARTBEAT = 30.0
STALE_AFTER = 120.0


class LockedError(DemtuiError):
    """Another live process writes this directory (exit 2: choose another --out or wait)."""


@dataclass
class Holder:
    pid: int
    host: str
    started: str | None
    since: float
    heartbeat: float
    command: str = ""

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"process {self.pid} on host {self.host} (since {when})"


def read_holder(directory: Path, name: str = LOCK_FILE) -> Holder | None:
    """Who the lock file names, or None when it is empty, missing or unreadable."""
    try:
        data = json.loads((Path(directory) / name).read_text(encoding="utf-8") or "null")
        return Holder(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def _flock(fd: int) -> bool | None:
    """Take an exclusive non-blocking OS lock: True taken, False held elsewhere, None unsupported."""
    if sys.platform == "win32":  # pragma: no cover - no flock on Windows: the record decides
        return None
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # e.g. a file system without lock support
        return None


def _holder_alive(holder: Holder, os_lock: bool | None) -> bool:
    """Is the recorded holder still writing? ``os_lock`` says what the kernel told us."""
    if holder.host == this_host():
        if holder.pid == os.getpid():
            return True
        if os_lock:  # the kernel gave us the lock, so no live process on this host holds it
            return False
        return same_process_alive(holder.pid, holder.started)
    return time.time() - holder.heartbeat < STALE_AFTER


def locked_message(directory: Path, holder: Holder | None) -> str:
    who = holder.describe() if holder else "another process"
    return f"{directory} is being written by {who}; wait for it to finish, stop it, or choose another --out."


class DirLock:
    """Exclusive ownership of one directory; use as a context manager or acquire/release."""

    def __init__(self, directory: Path, name: str = LOCK_FILE, what: str = "run directory") -> None:
        self.directory = Path(directory)
        self.path = self.directory / name
        self.what = what
        self.note = ""  # says so when a stale lock was taken over
        self._fd: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> "DirLock":
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileExistsError:
            raise SpecError(f"{self.directory} is a file, not a directory; choose another --out.") from None
        except NotADirectoryError:
            raise SpecError(f"{self.directory} lies under a file, not a directory; choose another --out.") from None
        except OSError as exc:  # bad input (a read-only or virtual path), so exit 2 like any other
            raise SpecError(f"Cannot write {self.what} {self.directory} ({exc.strerror}); choose a writable --out.") from None
        os_lock = _flock(fd)
        holder = read_holder(self.directory, self.path.name)
        if os_lock is False or (holder is not None and _holder_alive(holder, os_lock)):
            os.close(fd)
            raise LockedError(locked_message(self.directory, holder))
        if holder is not None and holder.pid != os.getpid():
            self.note = (f"took over the lock of {self.directory} from {holder.describe()}, "
                         "which is no longer running")
        self._fd = fd
        self._write_record()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lock {self.path}", daemon=True)
        self._beat.start()
        return self

    def _write_record(self, since: float | None = None) -> None:
        assert self._fd is not None
        now = time.time()
        record = Holder(pid=os.getpid(), host=this_host(), started=start_time(os.getpid()),
                        since=since or now, heartbeat=now, command=" ".join(sys.argv[:3])[:200])
        data = json.dumps(asdict(record)).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def _heartbeat(self) -> None:
        since = time.time()
        while not self._stop.wait(HEARTBEAT):
            try:
                self._write_record(since)
            except OSError:
                pass  # a full disk must not kill the run; the OS lock still holds

    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        try:
            os.ftruncate(self._fd, 0)  # an empty record: nobody holds it
        except OSError:
            pass
        os.close(self._fd)  # closing drops the OS lock
        self._fd = None

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_if_locked(directory: Path, name: str = LOCK_FILE) -> Holder | None:
    """The live holder of a directory's lock, or None when nobody writes it (for the TUI and executors)."""
    path = Path(directory) / name
    if not path.exists():
        return None
    holder = read_holder(directory, name)
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return holder
    try:
        os_lock = _flock(fd)
    finally:
        os.close(fd)  # also drops the probe's lock
    if os_lock is False:
        return holder or Holder(pid=0, host="?", started=None, since=time.time(), heartbeat=time.time())
    return holder if holder is not None and _holder_alive(holder, os_lock) else None


@contextlib.contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold an OS lock on ``path``, waiting for it: two workers needing one cached victim
    train it once, the second loads what the first saved. Without OS locks it does nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # no lock support here: at worst both workers train
        yield
    finally:
        os.close(fd)
