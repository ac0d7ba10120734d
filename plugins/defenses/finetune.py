"""The fine-tuning loop Democratic Training and every training baseline share.

Democratic Training, adversarial training, TRADES, known-UAP training and SFR differ only
in the loss of one batch; the rest — the clean subset held on the device as uint8, SGD
with momentum, the learning-rate schedule, the optional clean refinement stage, BatchNorm
handling, progress, cancellation, the per-epoch probe and the collapse check — is this
one loop, so a table comparing them compares losses, not training loops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from demtui.errors import CollapseError

#: One batch's loss: (float images in [0, 1], labels) → (loss, per-sample means to average per epoch).
BatchLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
#: (probe before training, probe now, number of classes) → has the model collapsed?
CollapseRule = Callable[[dict[str, float], dict[str, float], int], bool]


def set_train_mode(model: nn.Module, bn_mode: str) -> None:
    """Train mode, optionally with BatchNorm frozen (eval statistics, no running updates)."""
    model.train()
    if bn_mode == "eval":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


@torch.no_grad()
def probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Clean accuracy and the largest predicted-class share on a fixed slice (eval mode)."""
    was = model.training
    model.eval()
    pred = torch.cat([model(x[i:i + 256].float() / 255).argmax(1) for i in range(0, len(x), 256)])
    model.train(was)
    share = torch.bincount(pred, minlength=num_classes).max().item() / len(pred)
    return {"acc": float((pred == y).float().mean()), "top_share": share}


def collapsed(before: dict[str, float], now: dict[str, float], num_classes: int) -> bool:
    """Most inputs on one class *and* accuracy near chance, where it was not before.

    The failure mode of entropy minimisation plus CE (Democratic Training's rule).
    """
    chance = 1.0 / max(num_classes, 2)
    return (num_classes > 2 and now["top_share"] > 0.8 and now["acc"] < max(2 * chance, before["acc"] / 2))


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
    schedule: str = "constant",
    collapse_check: bool = True,
    collapse_rule: CollapseRule | None = None,
    collapse_hint: str = "lower defense.lr or the perturbation budget, or set defense.collapse_check=false to "
                         "finish anyway",
    parameters: Iterable[nn.Parameter] | None = None,
    set_mode: Callable[[], None] | None = None,
    epoch_samples: int | None = None,
    generator: torch.Generator | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on uint8 ``x`` with ``batch_loss``; returns the history.

    ``parameters`` restricts the optimiser (SFR trains its units only) and ``set_mode``
    replaces the BatchNorm handling of ``bn_mode`` (SFR keeps the original network in
    eval mode so its running statistics never move). ``schedule="cosine"`` anneals the
    first stage's lr to 0; the refinement stage keeps its own constant lr. ``generator``
    lets a loss that draws random numbers share the loop's stream (one seed, one run).
    ``epoch_samples`` streams: each epoch uses that many images of a fresh shuffle of ``x``
    (the authors' loader) instead of all of ``x`` (a fixed subset, the paper's text).
    """
    device = torch.device(device)
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    rule = collapse_rule or _destroyed
    x, y = x.to(device), y.to(device)
    pool = x.shape[0]
    n = min(int(epoch_samples), pool) if epoch_samples else pool  # images per epoch
    num_classes = int(y.max()) + 1
    params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
    probe_x, probe_y = x[: min(pool, 512)], y[: min(pool, 512)]
    before = probe(model, probe_x, probe_y, num_classes)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total = (epochs + refine_epochs) * steps_per_epoch
    history: dict[str, Any] = {"defense": name, "epochs": [], "probe_before": before, "samples": n}
    if epoch_samples:
        history["stream_pool"] = pool
    mode = set_mode or (lambda: set_train_mode(model, bn_mode))
    done = 0
    start = time.perf_counter()

    def clean_loss(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return F.cross_entropy(model(xb), yb), {}

    def run_stage(stage_epochs: int, stage_lr: float, loss_fn: BatchLoss, stage: str, anneal: bool) -> bool:
        nonlocal done
        opt = torch.optim.SGD(params, lr=stage_lr, momentum=momentum, weight_decay=weight_decay)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, stage_epochs * steps_per_epoch))
                 if anneal else None)
        for epoch in range(stage_epochs):
            mode()
            order = torch.randperm(pool, generator=g)[:n].to(device)
            sums: dict[str, float] = {"loss": 0.0}
            t0 = time.perf_counter()
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                loss, info = loss_fn(x[idx].float() / 255, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                sums["loss"] += float(loss.detach()) * len(idx)
                for key, value in info.items():
                    sums[key] = sums.get(key, 0.0) + value * len(idx)
                done += 1
                if progress:
                    progress(done, total, {"stage": stage, "epoch": epoch + 1, "loss": float(loss.detach())})
                if should_stop and should_stop():
                    return False
            now = probe(model, probe_x, probe_y, num_classes)
            record = {"stage": stage, "epoch": epoch + 1, **{k: round(v / n, 4) for k, v in sums.items()},
                      "probe_acc": round(now["acc"], 4), "top_share": round(now["top_share"], 4),
                      "seconds": round(time.perf_counter() - t0, 2)}
            history["epochs"].append(record)
            if collapse_check and rule(before, now, num_classes):
                model.eval()
                one_class = f", {now['top_share']:.0%} of inputs on one class" if now["top_share"] > 0.8 else ""
                raise CollapseError(
                    f"{name} collapsed the model at {stage} epoch {epoch + 1} (clean accuracy {before['acc']:.2f} → "
                    f"{now['acc']:.2f}{one_class}); {collapse_hint}.")
        return True

    finished = (run_stage(epochs, lr, batch_loss, "repair", anneal=schedule == "cosine")
                and run_stage(refine_epochs, refine_lr, clean_loss, "refine", anneal=False))
    model.eval()
    seconds = time.perf_counter() - start
    history.update(stopped=not finished, seconds=round(seconds, 2),
                   samples_per_s=round(done * batch_size / seconds, 1) if seconds > 0 else None,
                   probe_after=probe(model, probe_x, probe_y, num_classes))
    return history


def _destroyed(before: dict[str, float], now: dict[str, float], num_classes: int) -> bool:
    """Democratic Training's collapse rule, plus: a model that worked (≥ 0.8) is now near chance.

    The second case is how robust-training losses fail on a small subset: TRADES with a
    large β flattens every output toward uniform (KL 0, CE log K) without sending inputs
    to one class. A model that was already stuck on one class before did not collapse here.
    """
    chance = 1.0 / max(num_classes, 2)
    if before["top_share"] <= 0.8 and collapsed(before, now, num_classes):
        return True
    return before["acc"] >= 0.8 and now["acc"] < 2 * chance


def mixed_loss(logits_adv: torch.Tensor, logits_clean: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """α·CE(perturbed) + (1−α)·CE(clean): Alg. 1's mixing, reused by every baseline."""
    return alpha * F.cross_entropy(logits_adv, y) + (1 - alpha) * F.cross_entropy(logits_clean, y)


def paired_forward(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturbed and clean halves in one forward pass (one set of batch statistics), as Alg. 1 here."""
    logits = model(torch.cat([x_adv, x]))
    return logits[: len(x)], logits[len(x):]
