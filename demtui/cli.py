"""The `demtui` command line (typer). Heavy imports happen inside commands only.

Exit codes: 0 done · 1 internal error (a bug; --debug shows the trace) · 2 bad input
(unknown names, bad params, missing data, no such device) · 3 run failed (a stage
failed, the model collapsed, the run directory is corrupt) · 130 cancelled (finished
stages are kept; --resume continues).

The commands themselves live in demtui.commands, one module per group.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from demtui.commands import catalog, reproduce, run, tools
from demtui.commands.common import STATE

app = typer.Typer(add_completion=False, invoke_without_command=True, no_args_is_help=False,
                  help="Test vision models against universal adversarial perturbations and repair them.",
                  rich_markup_mode=None, pretty_exceptions_enable=False)


@app.callback()
def main_callback(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    STATE["debug"] = debug
    if version:
        from demtui import __version__

        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        # Bare `demtui` opens the TUI on a terminal; piped or redirected it prints help.
        if not (sys.stdout.isatty() and sys.stdin.isatty()):
            typer.echo(ctx.get_help())
            return
        from demtui.tui.app import run_tui  # imported here so --help and the subcommands stay fast

        run_tui()


app.command("run")(run.run)
app.command("reproduce")(reproduce.reproduce)
app.command("train")(tools.train)
app.command("plugins")(catalog.plugins)
app.command("list")(catalog.list_)
app.command("show")(catalog.show)
app.command("report")(tools.report)
app.command("new-plugin")(tools.new_plugin)


def main() -> None:
    app()
