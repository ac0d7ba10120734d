"""What a remote worker runs for one cell: the engine, in the worker's own process.

Ray tasks and SLURM jobs call :func:`run_job` with nothing but the run directory: the
spec travels as ``submitted.toml`` inside it (so the directory must be on a path the
driver and the workers share). A retried job finds its directory half done and resumes
it; every outcome comes back as the CLI's exit code and its one sentence, never as an
exception, so the executor can tell bad input (not retried) from a lost worker (retried).
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

from demtui.executors.base import SUBMITTED_SPEC


def probe_path(root: str, token: str) -> str | None:
    """None when ``root`` is visible and writable here and holds the driver's token file; else why not."""
    from demtui.procs import this_host

    where = f"on host {this_host()}"
    path = Path(root)
    if not path.is_dir():
        return f"{root} does not exist {where}"
    if token and not (path / token).exists():
        return f"{root} exists {where} but is not the driver's folder (a node-local path?)"
    try:
        probe = path / f".probe-{this_host()}-{os.getpid()}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        return f"{root} is not writable {where} ({exc.strerror})"
    return None


def run_job(run_dir: str, device: str | None = None, resume: bool = False, registry: str | None = None,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    """A remote worker's entry: set the driver's environment, then :func:`run_in_process`."""
    for key, value in (env or {}).items():
        os.environ.setdefault(key, value)
    return run_in_process(Path(run_dir), device, resume, registry)


def run_in_process(run_dir: Path, device: str | None = None, resume: bool = False, registry: str | None = None,
                   listeners: list[Any] | None = None, debug: bool = False) -> dict[str, Any]:
    """Run (or continue) the run in ``run_dir`` here; returns ``{returncode, message, summary, pid, host}``.

    KeyboardInterrupt (Ctrl-C, a cancelled Ray task) ends the run cleanly as code 130.
    """
    from demtui.errors import DemtuiError
    from demtui.procs import this_host

    root = Path(run_dir)
    out: dict[str, Any] = {"returncode": 1, "message": "", "summary": None, "pid": os.getpid(), "host": this_host()}
    log = root / "run.log"
    _log(log, f"$ worker {this_host()} pid {os.getpid()}: run {root}")
    try:
        out.update(_run(root, device, resume, registry, listeners or []))
    except KeyboardInterrupt:
        out.update(returncode=130, message="cancelled")
    except DemtuiError as exc:
        if debug:
            raise
        out.update(returncode=exc.exit_code, message=str(exc))
        if getattr(exc, "trace", ""):  # a plugin's failure: its own traceback goes to run.log
            _log(log, exc.trace)
    except Exception as exc:  # noqa: BLE001 - every outcome goes back as data
        if debug:
            raise
        out.update(returncode=1, message=f"internal error: {type(exc).__name__}: {exc}")
        _log(log, traceback.format_exc())
    _log(log, f"exit {out['returncode']}: {out['message']}" if out["message"] else f"exit {out['returncode']}")
    return out


def _run(root: Path, device: str | None, resume: bool, registry: str | None,
         listeners: list[Any]) -> dict[str, Any]:
    from demtui import spec as specmod
    from demtui.engine import execute
    from demtui.errors import SpecError
    from demtui.registry import get_registry
    from demtui.store import RunStore

    reg = get_registry(registry)
    store = RunStore(root)
    submitted = root / SUBMITTED_SPEC
    source = submitted if submitted.exists() else store.spec_path
    if not source.exists():
        raise SpecError(f"{root} holds no {SUBMITTED_SPEC} or spec.toml; the worker cannot see the driver's "
                        "files (put --out on a folder every worker shares).")
    data = specmod.read_spec_file(source)
    if device:
        data.setdefault("run", {})["device"] = device
    run_spec = specmod.resolve(data, reg)
    resume = resume or store.exists()  # a retried job continues from its finished stages
    outcome = execute(run_spec, reg, root, resume=resume, listeners=listeners)
    code = {"finished": 0, "cancelled": 130}.get(outcome.status, 3)
    return {"returncode": code, "message": outcome.error or outcome.status, "summary": outcome.summary}


def _log(path: Path, line: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {line.rstrip()}\n")
    except OSError:
        pass
