"""The fine-tuning loop every training baseline shares, so comparisons with Democratic Training are fair.

Adversarial training, TRADES, known-UAP training and SFR differ only in the loss of one
batch; the rest — the clean subset held on the device as uint8, SGD with momentum, the
optional clean refinement stage, BatchNorm handling, progress, cancellation, the
per-epoch probe and the collapse check — is the same code Democratic Training runs
(``plugins/defenses/democratic.py``), so a table comparing them compares losses, not
training loops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from demtui.errors import CollapseError
from demtui.plugins.defenses.democratic import _collapsed, _probe, _set_mode

#: One batch's loss: (float images in [0, 1], labels) → (loss, numbers to average per epoch).
BatchLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def finetune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_loss: BatchLoss,
    *,
    name: str,
    epochs: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    bn_mode: str = "train",
    refine_epochs: int = 0,
    refine_lr: float = 1e-5,
    collapse_check: bool = True,
    parameters: Iterable[nn.Parameter] | None = None,
    set_mode: Callable[[], None] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on uint8 ``x`` with ``batch_loss``; returns the history.

    ``parameters`` restricts the optimiser (SFR trains its units only) and ``set_mode``
    replaces the BatchNorm handling of ``bn_mode`` (SFR keeps the original network in
    eval mode so its running statistics never move).
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x, y = x.to(device), y.to(device)
    n = x.shape[0]
    num_classes = int(y.max()) + 1
    params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
    probe_x, probe_y = x[: min(n, 512)], y[: min(n, 512)]
    before = _probe(model, probe_x, probe_y, num_classes)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total = (epochs + refine_epochs) * steps_per_epoch
    history: dict[str, Any] = {"defense": name, "epochs": [], "probe_before": before, "samples": n}
    mode = set_mode or (lambda: _set_mode(model, bn_mode))
    done = 0
    start = time.perf_counter()

    def clean_loss(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return F.cross_entropy(model(xb), yb), {}

    def run_stage(stage_epochs: int, stage_lr: float, loss_fn: BatchLoss, stage: str) -> bool:
        nonlocal done
        opt = torch.optim.SGD(params, lr=stage_lr, momentum=momentum, weight_decay=weight_decay)
        for epoch in range(stage_epochs):
            mode()
            order = torch.randperm(n, generator=g).to(device)
            sums: dict[str, float] = {"loss": 0.0}
            t0 = time.perf_counter()
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                loss, info = loss_fn(x[idx].float() / 255, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sums["loss"] += float(loss.detach()) * len(idx)
                for key, value in info.items():
                    sums[key] = sums.get(key, 0.0) + value * len(idx)
                done += 1
                if progress:
                    progress(done, total, {"stage": stage, "epoch": epoch + 1, "loss": float(loss.detach())})
                if should_stop and should_stop():
                    return False
            probe = _probe(model, probe_x, probe_y, num_classes)
            record = {"stage": stage, "epoch": epoch + 1, **{k: round(v / n, 4) for k, v in sums.items()},
                      "probe_acc": round(probe["acc"], 4), "top_share": round(probe["top_share"], 4),
                      "seconds": round(time.perf_counter() - t0, 2)}
            history["epochs"].append(record)
            if collapse_check and _destroyed(before, probe, num_classes):
                model.eval()
                one_class = f", {probe['top_share']:.0%} of inputs on one class" if probe["top_share"] > 0.8 else ""
                raise CollapseError(
                    f"{name} destroyed the model at {stage} epoch {epoch + 1} (clean accuracy {before['acc']:.2f} → "
                    f"{probe['acc']:.2f}{one_class}); lower defense.lr or the perturbation budget, "
                    "or set defense.collapse_check=false to finish anyway.")
        return True

    finished = (run_stage(epochs, lr, batch_loss, "repair")
                and run_stage(refine_epochs, refine_lr, clean_loss, "refine"))
    model.eval()
    seconds = time.perf_counter() - start
    history.update(stopped=not finished, seconds=round(seconds, 2),
                   samples_per_s=round(done * batch_size / seconds, 1) if seconds > 0 else None,
                   probe_after=_probe(model, probe_x, probe_y, num_classes))
    return history


def _destroyed(before: dict[str, float], now: dict[str, float], num_classes: int) -> bool:
    """Democratic Training's collapse rule, plus: a model that worked (≥ 0.8) is now near chance.

    The second case is how robust-training losses fail on a small subset: TRADES with a
    large β flattens every output toward uniform (KL 0, CE log K) without sending inputs
    to one class. A model that was already stuck on one class before did not collapse here.
    """
    chance = 1.0 / max(num_classes, 2)
    if before["top_share"] <= 0.8 and _collapsed(before, now, num_classes):
        return True
    return before["acc"] >= 0.8 and now["acc"] < 2 * chance


def mixed_loss(logits_adv: torch.Tensor, logits_clean: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """α·CE(perturbed) + (1−α)·CE(clean): Alg. 1's mixing, reused by every baseline."""
    return alpha * F.cross_entropy(logits_adv, y) + (1 - alpha) * F.cross_entropy(logits_clean, y)


def paired_forward(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturbed and clean halves in one forward pass (one set of batch statistics), as Alg. 1 here."""
    logits = model(torch.cat([x_adv, x]))
    return logits[: len(x)], logits[len(x):]
