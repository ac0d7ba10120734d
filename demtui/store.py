"""The run directory: spec, events, results, artifacts — every write atomic.

Layout::

    <run>/spec.toml        the resolved RunSpec (what ran)
    <run>/events.jsonl     the event stream (demtui.events)
    <run>/results.json     per-stage results, rewritten atomically at each stage end
    <run>/artifacts/       UAPs and defended weights (safetensors), PNG previews
    <run>/report.md        a human summary, regenerated at the end
    <run>/run.log          stdout/stderr of a run launched in the background
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from demtui.errors import RunError

RESULTS_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and os.replace: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a run shared with a group must stay readable
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process umask (read once: reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode an ordinary new file gets here (0666 less the umask); temp files start at 0600."""
    return 0o666 & ~_umask()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.artifacts = self.root / "artifacts"
        self.events_path = self.root / "events.jsonl"
        self.results_path = self.root / "results.json"
        self.spec_path = self.root / "spec.toml"
        self.report_path = self.root / "report.md"
        self._results: dict[str, Any] | None = None

    def create(self) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)

    def exists(self) -> bool:
        return self.spec_path.exists() or self.results_path.exists()

    # -- results -----------------------------------------------------------------
    @property
    def results(self) -> dict[str, Any]:
        if self._results is None:
            self._results = self._read_results()
        return self._results

    def _read_results(self) -> dict[str, Any]:
        if not self.results_path.exists():
            return {"version": RESULTS_VERSION, "stages": {}}
        try:
            data = json.loads(self.results_path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise RunError(
                f"{self.results_path} is unreadable ({exc}); move the run directory aside and start a fresh run."
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
            raise RunError(f"{self.results_path} is not a demtui results file; point --out at a demtui run directory.")
        return data

    def stage(self, name: str) -> dict[str, Any] | None:
        """The saved result of a *finished* stage, else None."""
        entry = self.results["stages"].get(name)
        return entry if entry and entry.get("status") == "finished" else None

    def partial(self, name: str) -> dict[str, Any]:
        """Work saved so far inside an unfinished stage (e.g. UAPs of some targets)."""
        return self.results.setdefault("partial", {}).setdefault(name, {})

    def save_partial(self, name: str, key: str, value: Any) -> None:
        self.partial(name)[key] = value
        self.flush()

    def finish_stage(self, name: str, data: dict[str, Any], seconds: float) -> None:
        self.results["stages"][name] = {"status": "finished", "seconds": round(seconds, 3), **data}
        self.results.get("partial", {}).pop(name, None)
        self.flush()

    def set_summary(self, summary: dict[str, Any]) -> None:
        self.results["summary"] = summary
        self.flush()

    def flush(self) -> None:
        from demtui.jsonsafe import dumps

        atomic_write_text(self.results_path, dumps(self.results, indent=1, default=float))

    def artifact(self, name: str) -> Path:
        return self.artifacts / name
