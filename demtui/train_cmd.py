"""`demtui train`: train a victim with the standard recipe and write its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from demtui.context import RunContext, resolve_device
from demtui.data import take_subset
from demtui.errors import SpecError
from demtui.prepare import build_model, load_dataset
from demtui.registry import Registry
from demtui.spec import RunSpec


def train_to_file(spec: RunSpec, registry: Registry, out: Path) -> dict[str, Any]:
    from demtui.evaluation import predict_under
    from demtui.plugins.models.builders import save_checkpoint
    from demtui.training import train_classifier

    if out.suffix != ".safetensors":
        raise SpecError(f"--out {out} must end in .safetensors (demtui writes safetensors checkpoints).")
    ctx = RunContext(device=resolve_device(spec.run["device"]), seed=spec.run["seed"])
    splits = load_dataset(spec, registry, ctx)
    built = build_model(spec, registry, len(splits.classes), ctx)
    model = built.module.to(ctx.device)
    x, y = take_subset(splits.train, spec.victim["samples"] or len(splits.train), seed=spec.run["seed"])
    params = {k: v for k, v in spec.victim.items() if k != "samples"}
    start = time.perf_counter()
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("train", total=None)
        history = train_classifier(model, x, y, **params, seed=spec.run["seed"], device=ctx.device,
                                   progress=lambda d, t, info=None: bar.update(task, completed=d, total=t))
    x_test, y_test = take_subset(splits.test, spec.run["eval_samples"], seed=spec.run["seed"] + 17)
    pred = predict_under(model, x_test.to(ctx.device), [None], batch_size=spec.run["batch_size"], ctx=ctx)[0]
    save_checkpoint(model, out)
    return {"checkpoint": str(out), "seconds": round(time.perf_counter() - start, 1),
            "test_accuracy": round(float((pred == y_test).float().mean()), 4),
            "model": spec.model.name, "dataset": spec.dataset.name,
            "train_loss": history.get("final_loss"), "train_acc": history.get("train_acc")}
