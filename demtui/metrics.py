"""The paper's metrics, on predicted labels (so they are cheap and exact).

SR follows Eq. 2: samples whose true class *is* the target are excluded, because
predicting the target there is correct behaviour, not attack success.
"""

from __future__ import annotations

import torch


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {tuple(a.shape)} vs {tuple(b.shape)}")


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """CAcc on clean predictions (or any predictions against true labels)."""
    _check(pred, y)
    if pred.numel() == 0:
        return float("nan")
    return float((pred == y).float().mean())


def adversarial_accuracy(adv_pred: torch.Tensor, y: torch.Tensor) -> float:
    """AAcc (Eq. 3): accuracy on perturbed inputs over *all* samples."""
    return accuracy(adv_pred, y)


def targeted_success_rate(adv_pred: torch.Tensor, y: torch.Tensor, target: int) -> float:
    """SR (Eq. 2): share of non-target-class samples classified as ``target``.

    NaN when every sample belongs to the target class (SR is undefined there).
    """
    _check(adv_pred, y)
    keep = y != target
    if not bool(keep.any()):
        return float("nan")
    return float((adv_pred[keep] == target).float().mean())


def fooling_rate(clean_pred: torch.Tensor, adv_pred: torch.Tensor) -> float:
    """Non-targeted SR (Appendix 8.7): share of inputs whose prediction the perturbation changes."""
    _check(clean_pred, adv_pred)
    if clean_pred.numel() == 0:
        return float("nan")
    return float((clean_pred != adv_pred).float().mean())


def delta_cacc(cacc_before: float | None, cacc_after: float | None) -> float | None:
    """ΔCAcc = CAcc(repaired) − CAcc(original); None when either side did not run."""
    if cacc_before is None or cacc_after is None:
        return None
    return cacc_after - cacc_before
