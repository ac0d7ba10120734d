"""Resolve before work: every check that needs no data, in seconds, before prepare.

Prepare loads the dataset and may train a victim (minutes). Anything wrong that can be
known without that — a target the dataset lacks, a layer the architecture lacks, an
architecture name, a checkpoint or dataset folder that is not there — is found here,
before the run directory is even written. Checks that cannot be made cheaply (a plugin's
dataset of unknown classes) are skipped; prepare still makes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from demtui.errors import DataError, DemtuiError, ModelError
from demtui.spec import RunSpec

_BUILTIN_DATASETS = "demtui.plugins.datasets.entries:"
_BUILTIN_MODELS = "demtui.plugins.models.entries:"


def preflight(spec: RunSpec, registry: Any) -> None:
    """Raise the first problem as one sentence (DemtuiError); return quietly when none is found."""
    classes = dataset_classes(spec, registry)
    check_checkpoint(spec)
    if classes is not None:
        from demtui.prepare import resolve_targets

        resolve_targets(spec, list(classes))
    check_model(spec, registry, len(classes) if classes else None)


def _entry(registry: Any, kind: str, name: str) -> str:
    try:
        return str(registry.get(kind, name).entry)
    except DemtuiError:
        return ""


def dataset_classes(spec: RunSpec, registry: Any) -> list[str] | None:
    """The class names of a dataset without loading it (None: not knowable cheaply).

    A dataset source declares them (``DatasetSource.classes``, a third party's too); an
    image folder's come from its subfolders."""
    try:
        source = registry.get("dataset", spec.dataset.name)
    except DemtuiError:
        return None
    entry, params = str(source.entry), spec.dataset.params
    builtin = entry.startswith(_BUILTIN_DATASETS)
    if builtin and entry.endswith(":load_image_folder"):
        return _image_folder_classes(params.get("root"))
    if builtin and "root" in params and "download" in params:
        root = Path(str(params.get("root"))).expanduser()
        if not params.get("download", True) and not root.is_dir():
            raise DataError(f"Dataset folder '{root}' does not exist and download is off; pass --set "
                            "dataset.download=true or point --set dataset.root=DIR at a copy.")
    classes = getattr(source, "classes", ())
    return list(classes) if classes else None


def _image_folder_classes(root_value: Any) -> list[str]:
    if not root_value:
        raise DataError("Dataset 'imagefolder' needs a folder: pass --set dataset.root=DIR with one subfolder "
                        "of images per class.")
    root = Path(str(root_value)).expanduser()
    if not root.is_dir():
        raise DataError(f"Dataset folder '{root}' does not exist; "
                        "pass --set dataset.root=DIR with one subfolder of images per class.")
    source = root / "train" if (root / "train").is_dir() else root
    try:
        classes = sorted(e.name for e in os.scandir(source) if e.is_dir())  # as torchvision's ImageFolder
    except OSError as exc:
        raise DataError(f"Dataset folder '{source}' cannot be read ({exc.strerror}); check its permissions.") from None
    if source is root:
        classes = [c for c in classes if c not in ("val", "test")] if (root / "train").is_dir() else classes
    if len(classes) < 2:
        raise DataError(f"Dataset folder '{source}' has {len(classes)} class subfolder(s); "
                        "a classifier needs at least two (one subfolder of images per class).")
    return classes


def check_checkpoint(spec: RunSpec) -> None:
    checkpoint = spec.model.params.get("checkpoint")
    if not checkpoint:
        return
    path = Path(str(checkpoint)).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ModelError(f"Checkpoint '{path}' {what}; check model.checkpoint (a .safetensors or .pt file).")


def check_model(spec: RunSpec, registry: Any, num_classes: int | None) -> None:
    """Build a built-in architecture on the meta device (no memory, no weights): its name, the
    run's layer and (when the class count is known) a safetensors checkpoint's shapes are checked
    against the real module tree in about a second."""
    source, arch = registry.model_source(spec.model.name)
    if not str(source.entry).startswith(_BUILTIN_MODELS):
        return
    import torch

    build = source.load()
    params = {**spec.model.params, "pretrained": "false", "checkpoint": None}  # no downloads, no files
    try:
        with torch.device("meta"):
            built = build(arch, num_classes or 10, params, None)
    except DemtuiError:
        raise  # an unknown architecture: torchvision/timm name with 'did you mean'
    except Exception:  # noqa: BLE001 - anything else is prepare's to report, with its full context
        return
    from demtui.prepare import resolve_layers

    resolve_layers(spec, registry, built)
    if num_classes is not None:
        check_checkpoint_fits(spec, built.module)


def check_checkpoint_fits(spec: RunSpec, module: Any) -> None:
    """A safetensors checkpoint's header (names and shapes, no weights) against the meta-built model."""
    checkpoint = spec.model.params.get("checkpoint")
    if not checkpoint or not str(checkpoint).endswith(".safetensors"):
        return  # .pt files hold no separate header; prepare checks them
    import torch
    from safetensors import safe_open

    from demtui.plugins.models.builders import fit_state

    path = Path(str(checkpoint)).expanduser()
    try:
        with safe_open(str(path), framework="pt") as fh:
            state = {k: torch.empty(fh.get_slice(k).get_shape(), device="meta") for k in fh.keys()}
    except Exception:  # noqa: BLE001 - an unreadable file: prepare says so with its own sentence
        return
    fit_state(path, state, module.state_dict())


def preflight_cells(cells: list[Any], registry: Any) -> None:
    """Preflight every cell of a grid (each distinct model/dataset/targets/layer once), naming the cell."""
    import json
    import tomllib

    from demtui.spec import resolve

    seen: set[str] = set()
    for cell in cells:
        spec = resolve(tomllib.loads(cell.spec_toml), registry)
        key = json.dumps([spec.model.name, spec.model.params, spec.dataset.name, spec.dataset.params,
                          spec.targets, spec.run["layer"]], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            preflight(spec, registry)
        except DemtuiError as exc:
            raise type(exc)(f"Grid cell '{cell.label}': {exc}") from None
