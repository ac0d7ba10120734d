"""The headless progress view: a rich live display driven only by run events."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressView:
    """Turns events into one progress bar per stage plus log lines, on stderr."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False, disable=quiet,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "ProgressView":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def _task(self, stage: str, total: int | None = None) -> Any:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, info="")
        return self.tasks[stage]

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "stage_started":
            self._task(event["stage"])
        elif kind == "progress":
            info = " ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in event["info"].items())
            self.progress.update(self._task(event["stage"]), completed=event["done"], total=event["total"],
                                 info=escape(info))
        elif kind == "stage_finished":
            task = self._task(event["stage"])
            total = self.progress.tasks[task].total or 1
            head = " ".join(f"{k} {v:.3f}" for k, v in event["summary"].items() if isinstance(v, float))
            self.progress.update(task, total=total, completed=total, info=f"done in {event['seconds']:.1f}s {head}")
        elif kind == "stage_skipped":
            self.progress.add_task(event["stage"], total=1, completed=1, info="skipped: " + escape(str(event["reason"])))
        elif kind == "log" and not self.quiet:
            style = {"warning": "yellow", "error": "red"}.get(event["level"], "dim")
            self.console.print(f"[{style}]{escape(str(event['message']))}[/]")
        elif kind == "run_failed":
            # The CLI prints the error sentence itself; say only where the run stopped.
            self.console.print(f"[red]Stopped in stage {event['stage']}; finished stages are kept "
                               "(fix the cause, then run the same command with --resume; "
                               "changes to stages that did not finish are accepted).[/]")
        elif kind == "run_cancelled":
            self.console.print(f"[yellow]Cancelled during {event['stage']}; finished stages are kept. Re-run with --resume to continue.[/]")
