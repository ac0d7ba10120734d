"""The MLflow observer: one MLflow run per demtui run (a new one per invocation, so a
``--resume`` appears as its own run), through ``MlflowClient`` so no global "active
run" leaks into the user's own MLflow code.

Params are the flattened spec; metrics use the shared tags of
:mod:`demtui.observers.mapping` with their steps (batched, sent at each stage's end);
entropy histograms become their means (MLflow has no histograms); the artifacts folder
and results.json/report.md/spec.toml are logged when the run ends. The store is
``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a local file store in the run (or
grid) folder. A grid's runs are nested under one parent run per grid folder; a parent
run id in ``$DEMTUI_MLFLOW_PARENT_RUN_ID`` takes precedence.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from demtui.observers import ObserverContext
from demtui.observers.mapping import Histogram, Mapper, Scalar

PARENT_ENV = "DEMTUI_MLFLOW_PARENT_RUN_ID"
PARENT_FILE = "mlflow_parent.json"
STATUS = {"finished": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
MAX_PARAM = 500  # characters kept of a param value (the store's limit is larger; long values help no one)


def make(params: dict[str, Any], ctx: ObserverContext) -> "MlflowObserver":
    return MlflowObserver(params, ctx)


def tracking_uri(params: dict[str, Any], run_dir: Path, grid_dir: Path | None) -> str:
    uri = params.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI", "")
    return uri or ((grid_dir or run_dir).resolve() / "mlruns").as_uri()


class MlflowObserver:
    def __init__(self, params: dict[str, Any], ctx: ObserverContext) -> None:
        self.params = params
        self.ctx = ctx
        self.mapper = Mapper(ctx.run_dir)
        self.grid_dir = ctx.grid_dir if params.get("nested", True) else None
        self.uri = tracking_uri(params, ctx.run_dir, ctx.grid_dir)
        self.client: Any = None
        self.run_id = ""
        self.pending: list[Any] = []

    def _start(self) -> None:
        if self.uri.startswith("file:"):
            # MLflow 3 keeps its file store only behind this switch; demtui's default store is one (no database
            # server or SQLAlchemy needed); a sqlite:// or http(s):// tracking_uri avoids it.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient  # the tracker loads here, on the observer thread

        self.client = MlflowClient(tracking_uri=self.uri)
        name = str(self.params.get("experiment") or "demtui")
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else self.client.create_experiment(name)
        tags = {"demtui.run_dir": str(self.ctx.run_dir.resolve())}
        parent = os.environ.get(PARENT_ENV, "") or (self._grid_parent(experiment) if self.grid_dir else "")
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(experiment, run_name=self.ctx.run_dir.name, tags=tags)
        self.run_id = run.info.run_id

    def _grid_parent(self, experiment: str) -> str:
        """One parent run per grid folder, made by whichever cell comes first (others wait for its id)."""
        assert self.grid_dir is not None
        path = self.grid_dir / PARENT_FILE
        claim = self.grid_dir / (PARENT_FILE + ".claim")
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            for _ in range(600):
                try:
                    return str(json.loads(path.read_text(encoding="utf-8"))["run_id"])
                except (OSError, ValueError, KeyError):
                    time.sleep(0.1)
            return ""
        os.close(fd)
        run = self.client.create_run(experiment, run_name=self.grid_dir.name,
                                     tags={"demtui.grid_dir": str(self.grid_dir.resolve())})
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"run_id": run.info.run_id, "tracking_uri": self.uri}), encoding="utf-8")
        os.replace(tmp, path)
        return run.info.run_id

    def on_event(self, event: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param

        if self.client is None:
            self._start()
        records = self.mapper.feed(event)
        now = int(float(event.get("time", time.time())) * 1000)
        for rec in records:
            if isinstance(rec, Scalar):
                self.pending.append(Metric(rec.tag, rec.value, now, rec.step))
            elif isinstance(rec, Histogram):
                self.pending.append(Metric(rec.tag + "/mean", rec.mean, now, rec.step))
        kind = event.get("type")
        if kind == "run_started":
            params = [Param(k, str(v)[:MAX_PARAM]) for k, v in sorted(self.mapper.params().items())]
            for i in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[i:i + 100])
            self.client.set_tag(self.run_id, "demtui.run_id", str(event.get("run", "")))
        if kind in ("stage_finished", "run_finished", "run_failed", "run_cancelled"):
            self._flush()
        if kind == "run_finished" and self.params.get("log_artifacts", True):
            self._log_files()

    def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:1000], self.pending[1000:]
            self.client.log_batch(self.run_id, metrics=batch)

    def _log_files(self) -> None:
        run_dir = self.ctx.run_dir
        artifacts = run_dir / "artifacts"
        if artifacts.is_dir():
            self.client.log_artifacts(self.run_id, str(artifacts), "artifacts")
        for name in ("results.json", "report.md", "spec.toml"):
            if (run_dir / name).exists():
                self.client.log_artifact(self.run_id, str(run_dir / name))

    def close(self, status: str) -> None:
        if self.client is None:
            return
        self._flush()
        self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))
