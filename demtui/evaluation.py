"""Batched evaluation: predictions under many perturbations, layer-wise entropy.

All targets' perturbations go through the model in one pass per batch (the batch is
repeated once per perturbation), and every entropy layer is captured in the same forward
pass, because evaluation is most of a run's wall time after training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from demtui.entropy import entropy_gap, entropy_histogram, layer_entropy
from demtui.errors import ModelError, did_you_mean
from demtui.metrics import accuracy, adversarial_accuracy, fooling_rate, targeted_success_rate
from demtui.perturbation import AdditivePerturbation, Perturbation


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [0, 1]; floats pass through."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def predict_under(
    model: nn.Module,
    x: torch.Tensor,
    perturbations: Sequence[Perturbation | None],
    *,
    batch_size: int,
    ctx: Any,
    stream: bool | None = None,
) -> torch.Tensor:
    """Predictions (P, N) for each perturbation (None = clean) on uint8 images ``x``.

    ``stream`` (default: when ``x`` is a host tensor over the run's memory budget) feeds
    the batches through a DataLoader; the batches, and so the predictions, are the same.
    """
    model.eval()
    chunk = max(1, batch_size // max(1, len(perturbations)))
    out = []
    for xb in _batches(x, chunk, ctx, stream):
        xb = as_float(xb)
        views = [xb if p is None else p.apply(xb) for p in perturbations]
        with ctx.autocast():
            logits = model(torch.cat(views))
        out.append(logits.argmax(1).view(len(perturbations), -1).cpu())
    return torch.cat(out, dim=1)


def _batches(x: torch.Tensor, batch_size: int, ctx: Any, stream: bool | None) -> Iterator[torch.Tensor]:
    from demtui.data import batches, should_stream

    if stream is None:
        stream = should_stream(x, ctx.device, getattr(ctx, "hold_bytes", None))
    return batches(x, batch_size, ctx.device, stream=stream)


def attack_metrics(clean_pred: torch.Tensor, adv_pred: torch.Tensor, y: torch.Tensor, target: int | None) -> dict[str, float]:
    """SR (Eq. 2), AAcc (Eq. 3) and fooling rate for one perturbation."""
    y = y.cpu()
    out = {
        "aacc": adversarial_accuracy(adv_pred, y),
        "fooling_rate": fooling_rate(clean_pred, adv_pred),
        "cacc": accuracy(clean_pred, y),
    }
    if target is not None:
        out["sr"] = targeted_success_rate(adv_pred, y, target)
    return out


def random_sign_noise(shape: Sequence[int], eps: float, generator: torch.Generator) -> AdditivePerturbation:
    """The random baseline: ±eps per pixel, the worst-magnitude noise of the same budget."""
    return AdditivePerturbation.sign_noise(tuple(shape), eps, generator)


@contextlib.contextmanager
def capture_many(model: nn.Module, paths: dict[str, str]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks on several layers at once; yields role → last output."""
    store: dict[str, torch.Tensor] = {}
    handles = []
    names = dict(model.named_modules())
    try:
        for role, path in paths.items():
            if path not in names:
                raise ModelError(f"Layer '{path}' does not exist in the model." + did_you_mean(path, names)
                                 + " Run 'demtui show MODEL' or pass --layer with a role such as deep2.")
            handles.append(names[path].register_forward_hook(_saver(store, role)))
        yield store
    finally:
        for h in handles:
            h.remove()


def _saver(store: dict[str, torch.Tensor], role: str):
    def hook(_module: nn.Module, _inp: Any, out: Any) -> None:
        store[role] = out[0] if isinstance(out, (tuple, list)) else out
    return hook


@torch.no_grad()
def entropies(model: nn.Module, x: torch.Tensor, paths: dict[str, str], *, batch_size: int, ctx: Any,
              perturbation: Perturbation | None = None, stream: bool | None = None) -> dict[str, torch.Tensor]:
    """Eq. 5 entropy per sample at every layer in ``paths``: role → (N,) float tensor."""
    model.eval()
    acc: dict[str, list[torch.Tensor]] = {role: [] for role in paths}
    with capture_many(model, paths) as store:
        for xb in _batches(x, batch_size, ctx, stream):
            xb = as_float(xb)
            if perturbation is not None:
                xb = perturbation.apply(xb)
            with ctx.autocast():
                model(xb)
            for role in paths:
                acc[role].append(layer_entropy(store[role].float()).cpu())
    return {role: torch.cat(vals) for role, vals in acc.items()}


def entropy_analysis(model: nn.Module, x: torch.Tensor, paths: dict[str, str], perturbations: dict[str, Perturbation],
                     *, phase: str, bins: int, batch_size: int, ctx: Any) -> dict[str, Any]:
    """Clean vs perturbed vs UAP-alone entropy at each layer; emits one event per histogram.

    Returns role → {"clean": mean, "perturbed": {target: mean}, "uap": {target: mean},
    "gap": mean relative gap (RQ1)}. Histograms of a role share one range so they compare.
    """
    sources: dict[tuple[str, str | None], dict[str, torch.Tensor]] = {("clean", None): entropies(model, x, paths, batch_size=batch_size, ctx=ctx)}
    for key, pert in perturbations.items():
        sources[("perturbed", key)] = entropies(model, x, paths, batch_size=batch_size, ctx=ctx, perturbation=pert)
        if isinstance(pert, AdditivePerturbation):
            alone = pert.as_image().to(ctx.device)
            sources[("uap", key)] = entropies(model, alone, paths, batch_size=1, ctx=ctx)
    summary: dict[str, Any] = {}
    for role, path in paths.items():
        values = torch.cat([s[role] for s in sources.values()])
        lo, hi = float(values.min()), float(values.max())
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        role_summary: dict[str, Any] = {"layer": path, "perturbed": {}, "uap": {}}
        for (source, key), by_role in sources.items():
            vals = by_role[role]
            mean = float(vals.mean())
            ctx.emit("entropy", phase=phase, role=role, layer=path, source=source, target=key, mean=mean,
                     bins=bins, lo=lo, hi=hi, counts=entropy_histogram(vals, bins, lo, hi))
            if source == "clean":
                role_summary["clean"] = mean
            else:
                role_summary[source][key] = mean
        gaps = [entropy_gap(role_summary["clean"], m) for m in role_summary["perturbed"].values()]
        role_summary["gap"] = float(sum(gaps) / len(gaps)) if gaps else None
        summary[role] = role_summary
    return summary
