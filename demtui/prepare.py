"""Prepare a run: load data, build the victim (train once and cache it), resolve layers.

Victim training is cached under ``$DEMTUI_CACHE`` (default ``~/.cache/demtui``) keyed by
everything that shapes the weights, so a second quickstart starts in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from demtui.blame import blame
from demtui.components import ROLES
from demtui.context import RunContext
from demtui.contracts import BuiltModel, DatasetSplits
from demtui.data import budget_bytes, place, take_subset
from demtui.errors import DataError, DemtuiError, ModelError, SpecError, did_you_mean
from demtui.registry import Registry
from demtui.spec import RunSpec

VICTIM_RECIPE_VERSION = 1


@dataclass
class Prepared:
    """Everything later stages share, held in memory for the run's lifetime."""

    splits: DatasetSplits
    classes: list[str]
    built: BuiltModel
    layers: dict[str, str]  # role → module path (incl. the repair role's path)
    layer: str  # the run's entropy/repair layer path
    targets: list[int]
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    x_attack: torch.Tensor
    y_attack: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


def cache_dir() -> Path:
    return Path(os.environ.get("DEMTUI_CACHE", Path.home() / ".cache" / "demtui")).expanduser()


def load_dataset(spec: RunSpec, registry: Registry, ctx: RunContext) -> DatasetSplits:
    source = registry.get("dataset", spec.dataset.name)
    load = source.load()
    with blame(source, "loading the dataset"):
        return load(dict(spec.dataset.params), ctx)


def build_model(spec: RunSpec, registry: Registry, num_classes: int, ctx: RunContext) -> BuiltModel:
    """Build the architecture and load weights from a checkpoint when one is given."""
    source, arch = registry.model_source(spec.model.name)
    build = source.load()
    with blame(source, f"building the model '{spec.model.name}'"):
        built: BuiltModel = build(arch, num_classes, dict(spec.model.params), ctx)
    checkpoint = spec.model.params.get("checkpoint")
    if checkpoint:
        from demtui.plugins.models.builders import load_checkpoint

        load_checkpoint(built.module, checkpoint)
        built.weights = "checkpoint"
    return built


def resolve_layers(spec: RunSpec, registry: Registry, built: BuiltModel) -> tuple[dict[str, str], str]:
    """Role → path: a registry LayerMap for this model wins, else the builder's own map."""
    layer_map = registry.layer_map(spec.model.name)
    layers = {r: built.layer_prefix + p for r, p in layer_map.as_dict().items()} if layer_map else dict(built.layers)
    repair_role = layer_map.repair if layer_map else built.repair_role
    names = dict(built.module.named_modules())
    missing = [p for p in layers.values() if p not in names]
    if missing:
        raise ModelError(f"Layer map for '{spec.model.name}' names '{missing[0]}', which the model lacks;"
                         " fix the layer map plugin or pass --layer with a module path.")
    wanted = spec.run["layer"] or repair_role
    if wanted in layers:
        return layers, layers[wanted]
    if wanted in names:
        return layers, wanted
    raise SpecError(f"Layer '{wanted}' is neither a role ({', '.join(ROLES)}) nor a module of the model."
                    + did_you_mean(wanted, list(layers) + list(names)))


def resolve_targets(spec: RunSpec, classes: list[str]) -> list[int]:
    out = []
    for t in spec.targets:
        if isinstance(t, int):
            if not 0 <= t < len(classes):
                raise SpecError(f"Target class {t} does not exist; this dataset has classes 0–{len(classes) - 1}.")
            out.append(t)
        elif t in classes:
            out.append(classes.index(t))
        else:
            raise SpecError(f"Target '{t}' is not a class of this dataset." + did_you_mean(t, classes))
    return list(dict.fromkeys(out))


def victim_key(spec: RunSpec) -> str:
    model = {k: v for k, v in spec.model.params.items() if k not in ("train",)}
    blob = json.dumps([VICTIM_RECIPE_VERSION, spec.model.name, model, spec.dataset.name, spec.dataset.params,
                       spec.victim, spec.run["seed"]], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def needs_training(spec: RunSpec, built: BuiltModel) -> bool:
    mode = spec.model.params.get("train", "auto")
    return mode == "always" or (mode == "auto" and built.weights == "random")


def train_victim(spec: RunSpec, splits: DatasetSplits, built: BuiltModel, ctx: RunContext) -> dict[str, Any]:
    """Train with the standard recipe, or load the cached result of the same recipe.

    Workers of a grid that need the same victim wait for each other (a lock beside the
    cache entry), so it is trained once and loaded by the rest.
    """
    from demtui.lock import waiting_lock

    path = cache_dir() / "victims" / f"{victim_key(spec)}.safetensors"
    with waiting_lock(path.with_suffix(".lock")):
        return _train_or_load(spec, splits, built, ctx, path)


def _train_or_load(spec: RunSpec, splits: DatasetSplits, built: BuiltModel, ctx: RunContext,
                   path: Path) -> dict[str, Any]:
    from demtui.plugins.models.builders import load_checkpoint, save_checkpoint
    from demtui.training import train_classifier

    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        load_checkpoint(built.module, path)
        ctx.log(f"Loaded cached victim {path}")
        return {"cached": True, "path": str(path), **json.loads(meta_path.read_text())}
    n = spec.victim["samples"] or len(splits.train)
    x, y = take_subset(splits.train, n, seed=spec.run["seed"], hold_bytes=ctx.hold_bytes, spill_dir=spill_dir())
    start = time.perf_counter()
    params = {k: v for k, v in spec.victim.items() if k != "samples"}
    history = train_classifier(built.module, x, y, **params, seed=spec.run["seed"], device=ctx.device,
                               progress=ctx.progress, should_stop=ctx.should_stop)
    ctx.check_cancelled()
    save_checkpoint(built.module, path)
    meta = {"seconds": round(time.perf_counter() - start, 2), "samples": int(n),
            **{k: v for k, v in history.items() if isinstance(v, (int, float, str))}}
    from demtui.store import atomic_write_text

    atomic_write_text(meta_path, json.dumps(meta))
    ctx.log(f"Trained victim in {meta['seconds']} s; cached at {path}")
    return {"cached": False, "path": str(path), **meta}


@contextlib.contextmanager
def unreadable_images(spec: RunSpec) -> Iterator[None]:
    """An image file that cannot be decoded is bad input (exit 2 naming the file), not a crash."""
    try:
        yield
    except DemtuiError:
        raise
    except Exception as exc:
        if not _is_image_error(exc):
            raise
        raise DataError(f"An image of dataset '{spec.dataset.name}' cannot be decoded ({_one_line(exc)}); "
                        "remove or replace that file, then run again.") from None


def _is_image_error(exc: BaseException) -> bool:
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(exc, getattr(pil, "UnidentifiedImageError", ())):
        return True
    text = str(exc)
    return isinstance(exc, (OSError, SyntaxError, ValueError)) and ("image file" in text or "cannot identify image" in text)


def _one_line(exc: BaseException) -> str:
    import re

    text = " ".join(str(exc).split())
    text = re.sub(r"<_io\.\w+ name='(.*?)'>", r"\1", text)  # PIL names the file through its handle
    return text if len(text) < 300 else text[:297] + "..."


def spill_dir() -> Path:
    """Where subsets over the memory budget are mapped (on disk, beside the victim cache)."""
    return cache_dir() / "spill"


def prepare(spec: RunSpec, registry: Registry, ctx: RunContext) -> Prepared:
    with unreadable_images(spec):
        return _prepare(spec, registry, ctx)


def _prepare(spec: RunSpec, registry: Registry, ctx: RunContext) -> Prepared:
    torch.manual_seed(spec.run["seed"])
    ctx.hold_bytes = budget_bytes(spec.run.get("memory_budget", None))
    splits = load_dataset(spec, registry, ctx)
    if len(splits.test) == 0 or len(splits.train) == 0:
        raise DataError(f"Dataset '{spec.dataset.name}' has an empty split; check its root folder.")
    built = build_model(spec, registry, len(splits.classes), ctx)
    module: nn.Module = built.module.to(ctx.device)
    if ctx.channels_last:
        module.to(memory_format=torch.channels_last)
    info: dict[str, Any] = {"weights": built.weights}
    if needs_training(spec, built):
        info["victim"] = train_victim(spec, splits, built, ctx)
        built.weights = "trained"
    module.eval()
    layers, layer = resolve_layers(spec, registry, built)
    targets = resolve_targets(spec, splits.classes)
    hold = ctx.hold_bytes
    x_eval, y_eval = take_subset(splits.test, spec.run["eval_samples"], seed=spec.run["seed"] + 17,
                                 hold_bytes=hold, spill_dir=spill_dir())
    x_attack, y_attack = take_subset(splits.train, spec.run["attack_samples"], seed=spec.run["seed"] + 29,
                                     hold_bytes=hold, spill_dir=spill_dir())
    return Prepared(splits=splits, classes=list(splits.classes), built=built, layers=layers, layer=layer,
                    targets=targets, x_eval=place(x_eval, ctx.device, hold), y_eval=y_eval.to(ctx.device),
                    x_attack=place(x_attack, ctx.device, hold), y_attack=y_attack.to(ctx.device), info=info)
