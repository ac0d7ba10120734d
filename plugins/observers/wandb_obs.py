"""The Weights & Biases observer: one W&B run per demtui run, the same mapping as TensorBoard.

Never blocks a run on a login: ``mode=auto`` follows ``$WANDB_MODE`` when set, goes
online only when ``$WANDB_API_KEY`` is set, and is offline otherwise (``wandb sync``
uploads an offline run later). Files go under the run directory (``<run>/wandb``) unless
``dir`` says otherwise. A grid's runs share a group named after the grid folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from demtui.observers import ObserverContext
from demtui.observers.mapping import Histogram, Image, Mapper, Scalar


def make(params: dict[str, Any], ctx: ObserverContext) -> "WandbObserver":
    return WandbObserver(params, ctx)


def choose_mode(mode: str) -> str:
    """auto → $WANDB_MODE, else online with an API key, else offline."""
    if mode and mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip()
    if env:
        return env
    return "online" if os.environ.get("WANDB_API_KEY", "").strip() else "offline"


class WandbObserver:
    def __init__(self, params: dict[str, Any], ctx: ObserverContext) -> None:
        self.params = params
        self.ctx = ctx
        self.mapper = Mapper(ctx.run_dir)
        self.mode = choose_mode(str(params.get("mode") or "auto"))
        self.dir = Path(params.get("dir") or ctx.run_dir).expanduser()
        grid = ctx.grid_dir
        self.group = str(params.get("group") or (grid.name if grid else "")) or None
        self.run: Any = None
        self.wandb: Any = None
        self.stages: set[str] = set()

    def _start(self) -> None:
        import wandb  # the tracker loads here, on the observer thread

        self.wandb = wandb
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=str(self.params.get("project") or "demtui"),
                              entity=str(self.params.get("entity") or "") or None, name=self.ctx.run_dir.name,
                              dir=str(self.dir), mode=self.mode, group=self.group, config=self.mapper.params(),
                              reinit=_reinit(wandb.__version__), settings=wandb.Settings(silent=True, console="off"))

    def on_event(self, event: dict[str, Any]) -> None:
        records = self.mapper.feed(event)
        if self.run is None:
            self._start()
        data: dict[str, Any] = {}
        for rec in records:
            if isinstance(rec, Scalar):
                data[rec.tag] = rec.value
                stage = rec.tag.split("/", 1)[0]
                if event.get("type") == "progress":
                    self._step_metric(stage)
                    data[f"{stage}/step"] = rec.step
            elif isinstance(rec, Histogram):
                data[rec.tag] = self.wandb.Histogram(np_histogram=(rec.counts, rec.edges))
                data["entropy/phase"] = rec.step
            elif isinstance(rec, Image):
                data[rec.tag] = self.wandb.Image(str(rec.path))
        if data:
            self.run.log(data)
        if event.get("type") == "run_finished":
            self.run.summary.update(self.mapper.final())
            if self.params.get("log_artifacts", True):
                self._log_files()

    def _step_metric(self, stage: str) -> None:
        """Progress curves plot against their stage's own step (restarts per target are continued)."""
        if stage not in self.stages:
            self.stages.add(stage)
            self.run.define_metric(f"{stage}/step")
            self.run.define_metric(f"{stage}/*", step_metric=f"{stage}/step")

    def _log_files(self) -> None:
        run_dir = self.ctx.run_dir
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_dir.name)
        art = self.wandb.Artifact(f"demtui-{name}", type="demtui-run")
        if (run_dir / "artifacts").is_dir():
            art.add_dir(str(run_dir / "artifacts"), name="artifacts")
        for file in ("results.json", "report.md", "spec.toml"):
            if (run_dir / file).exists():
                art.add_file(str(run_dir / file))
        self.run.log_artifact(art)

    def close(self, status: str) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if status == "finished" else 1)


def _reinit(version: str) -> object:
    """A new run even when the user's process has one open: "create_new" since wandb 0.19, True before."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return "create_new"
    return "create_new" if (major, minor) >= (0, 19) else True
