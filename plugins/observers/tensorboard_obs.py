"""The TensorBoard observer: one event-file folder per run directory (``<run>/tensorboard``).

Scalars and histograms use the shared tags of :mod:`demtui.observers.mapping`; UAP
previews become images; when the run finishes, the spec becomes hparams with the final
metrics (the HParams tab), written into the same folder rather than a new sub-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demtui.observers import ObserverContext
from demtui.observers.mapping import Histogram, Image, Mapper, Scalar


def make(params: dict[str, Any], ctx: ObserverContext) -> "TensorBoardObserver":
    logdir = Path(params.get("logdir") or ctx.run_dir / "tensorboard").expanduser()
    return TensorBoardObserver(logdir, ctx.run_dir, int(params.get("flush_secs", 10)))


class TensorBoardObserver:
    def __init__(self, logdir: Path, run_dir: Path, flush_secs: int = 10) -> None:
        self.logdir = logdir
        self.mapper = Mapper(run_dir)
        self.flush_secs = flush_secs
        self.writer: Any = None

    def _open(self) -> Any:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # the tracker loads here, on the observer thread

            self.writer = SummaryWriter(log_dir=str(self.logdir), flush_secs=self.flush_secs)
        return self.writer

    def on_event(self, event: dict[str, Any]) -> None:
        records = self.mapper.feed(event)
        if event.get("type") == "run_started":
            self._open().add_text("spec", "```\n" + _toml(self.mapper.spec) + "\n```", 0)
        writer = self._open() if records else self.writer
        for rec in records:
            if isinstance(rec, Scalar):
                writer.add_scalar(rec.tag, rec.value, rec.step)
            elif isinstance(rec, Histogram):
                total, squares = rec.sums()
                writer.add_histogram_raw(rec.tag, min=rec.edges[0], max=rec.edges[-1], num=rec.num, sum=total,
                                         sum_squares=squares, bucket_limits=rec.edges[1:],
                                         bucket_counts=rec.counts, global_step=rec.step)
            elif isinstance(rec, Image):
                writer.add_image(rec.tag, _read_png(rec.path), rec.step, dataformats="HWC")
        if event.get("type") == "run_finished":
            self._hparams()
        if event.get("type") in ("stage_finished", "run_finished") and self.writer is not None:
            self.writer.flush()

    def _hparams(self) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = self.mapper.final()
        if not metrics:
            return
        exp, ssi, sei = hparams(self.mapper.params(), metrics)
        file_writer = self.writer.file_writer if hasattr(self.writer, "file_writer") else self.writer._get_file_writer()
        for summary in (exp, ssi, sei):
            file_writer.add_summary(summary)

    def close(self, status: str) -> None:
        if self.writer is not None:
            self.writer.add_text("status", status, 0)
            self.writer.close()


def _read_png(path: Path) -> Any:
    import numpy as np
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _toml(spec: dict[str, Any]) -> str:
    import tomli_w

    try:
        return tomli_w.dumps(spec)
    except (TypeError, ValueError):
        return str(spec)
