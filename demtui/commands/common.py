"""What every command shares: the registry option, one-sentence errors and stderr output."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from demtui.errors import DemtuiError

STATE: dict[str, Any] = {"debug": False}

RegistryOpt = Annotated[Optional[Path], typer.Option("--registry", help="A registry.toml merged over the built-in one.")]


def stderr(message: str, markup: bool = True) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(message, markup=markup)


def guard(fn):
    """Turn DemtuiError into one sentence and an exit code; never a bare traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DemtuiError as exc:
            trace = getattr(exc, "trace", "")  # a plugin's failure carries the plugin's own traceback
            if STATE["debug"] and not trace:
                raise
            if STATE["debug"]:
                stderr(trace.rstrip(), markup=False)
            label = "internal error:" if exc.exit_code == 1 else "error:"
            stderr(f"[red]{label}[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            stderr("[yellow]Interrupted.[/]")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except BrokenPipeError:
            # `demtui list | head`: the reader left; nothing to report and nothing was lost.
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stderr at exit
            raise typer.Exit(0) from None
        except Exception as exc:
            if STATE["debug"]:
                raise
            what = escape(f"{type(exc).__name__}: {exc}")
            stderr(f"[red]internal error:[/] {what} (re-run with --debug for the trace and report it).")
            raise typer.Exit(1) from None
    return wrapper


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def load_registry(path: Path | None, warn: bool = False, check_defaults: bool = True):
    """The shared registry; with ``warn``, one line on stderr when plugins did not load cleanly.

    A bad registry.toml default would silently run another experiment than the one the user
    wrote, so commands that use defaults (run, show, list) refuse it; ``plugins`` reports it.
    """
    from demtui.registry import describe_broken, get_registry

    reg = get_registry(path)
    problems = getattr(reg, "defaults_problems", [])
    if check_defaults and problems:
        files = [s for s in reg.config.sources if not s.endswith("demtui/registry.toml")] or reg.config.sources
        raise DemtuiError(f"registry.toml {problems[0]}; fix it in {', '.join(files) or 'registry.toml'}"
                          + (f" ({len(problems) - 1} more: run 'demtui plugins')." if len(problems) > 1 else "."))
    line = describe_broken(reg) if warn else ""
    if line:
        stderr(f"[yellow]warning:[/] {escape(line)}")
        if STATE["debug"]:
            for rec in reg.broken():
                for trace in rec.traces:
                    stderr(trace.rstrip(), markup=False)
    return reg
