"""Budgets: every perturbation an attack returns is measured against its declared threat model.

The engine (after each generate) and ``demtui.testing.check_attack`` call
:func:`check_perturbation`, so a plugin cannot report success rates outside the budget it
declares, whatever Perturbation class it returns. What is checked (docs/plugins.md):

- every kind: ``apply`` keeps the batch's shape, dtype and device and returns finite
  values in [0, 1];
- ``linf`` and ``generator`` attacks (an additive δ): ‖apply(x) − x‖∞ ≤ ε on probe images
  (real ones plus mid-grey, where clamping cannot hide δ), and ‖δ‖∞ ≤ ε for an
  AdditivePerturbation's own tensor, within float32 rounding (LINF_ATOL + LINF_RTOL·ε);
- ``patch`` attacks: the pixels ``apply`` changes per image (probed on black, white, grey
  and real images, so no patch colour hides) fit in the declared area: at most
  ⌈√(area·H·W)⌉² pixels, or ``size``² when an ``int`` parameter ``size`` is set.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from demtui.blame import BudgetError, blame, describe, is_builtin, provider_of
from demtui.perturbation import AdditivePerturbation, Perturbation

#: float32 rounding of x + δ − x is below 1.2e-7; a real overshoot is orders of magnitude larger.
LINF_ATOL = 1e-6
LINF_RTOL = 1e-4


def probe_images(x: torch.Tensor, n: int = 8) -> torch.Tensor:
    """Float probe batch in [0, 1]: black, white, mid-grey, then up to ``n`` real images."""
    real = x[:n].float() / 255 if x.dtype == torch.uint8 else x[:n].float()
    shape = (1, *real.shape[1:])
    consts = [torch.full(shape, v, device=real.device) for v in (0.0, 1.0, 0.5)]
    return torch.cat([*consts, real])


def _fmt(value: float) -> str:
    return f"{value:.4f} ({value * 255:.1f}/255)"


def allowed_patch_pixels(params: dict[str, Any], budget_param: str, image_hw: tuple[int, int]) -> int:
    size = params.get("size")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size * size
    area = float(params[budget_param])
    return math.ceil(math.sqrt(area * image_hw[0] * image_hw[1])) ** 2


def measure(pert: Perturbation, probe: torch.Tensor) -> dict[str, Any]:
    """What the perturbation does to the probe batch (no judgement): norms and changed pixels."""
    with torch.no_grad():
        out = pert.apply(probe)
    info: dict[str, Any] = {"kind": pert.kind or type(pert).__name__, "shape_ok": tuple(out.shape) == tuple(probe.shape),
                            "dtype_ok": out.dtype == probe.dtype, "device_ok": out.device == probe.device}
    if not info["shape_ok"]:
        return info
    diff = (out.float() - probe.float())
    finite = bool(torch.isfinite(out).all())
    info["finite"] = finite
    info["in_range"] = finite and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    info["linf"] = float(diff.abs().max()) if finite else float("inf")
    if isinstance(pert, AdditivePerturbation):
        info["linf"] = max(info["linf"], float(pert.delta.abs().max()))
    info["changed_pixels"] = int((diff != 0).any(dim=1).flatten(1).sum(dim=1).max()) if diff.dim() == 4 else 0
    return info


def check_perturbation(attack: Any, pert: Any, params: dict[str, Any], probe: torch.Tensor) -> dict[str, Any]:
    """Raise BudgetError (naming the plugin and the measured norm) unless ``pert`` keeps the attack's promise.

    Returns the record the engine stores beside the UAP: threat, limit, measured value.
    """
    who = describe(attack)
    if not isinstance(pert, Perturbation):
        _fail(attack, f"{who} returned a {type(pert).__name__}, not a Perturbation",
              "return a demtui.api.Perturbation (e.g. AdditivePerturbation(delta, eps))")
    with blame(attack, "applying the perturbation it returned"):
        info = measure(pert, probe)
    if not (info["shape_ok"] and info["dtype_ok"] and info["device_ok"]):
        _fail(attack, f"{who} returned a perturbation whose apply() changes the batch's shape, dtype or device",
              "return x' with the shape, dtype and device of x")
    if not info["in_range"]:
        _fail(attack, f"{who} returned a perturbation whose apply() leaves [0, 1] or gives non-finite values",
              "clamp x + δ to [0, 1] in apply")
    threat = getattr(attack, "threat", "linf")
    budget_param = getattr(attack, "budget_param", "eps")
    record: dict[str, Any] = {"threat": threat, "param": budget_param, "kind": info["kind"]}
    if threat in ("linf", "generator"):
        eps = float(params[budget_param])
        record.update(limit=eps, measured=round(info["linf"], 8))
        if info["linf"] > eps + LINF_ATOL + LINF_RTOL * eps:
            _fail(attack, f"{who} returned a perturbation with L∞ norm {_fmt(info['linf'])}, above its budget "
                          f"{budget_param} = {_fmt(eps)}",
                  "project δ onto [−ε, ε] after every step and return AdditivePerturbation(delta, params['eps'])",
                  measured=info["linf"], limit=eps)
    elif threat == "patch":
        allowed = allowed_patch_pixels(params, budget_param, tuple(probe.shape[-2:]))  # type: ignore[arg-type]
        record.update(limit=allowed, measured=info["changed_pixels"])
        if info["changed_pixels"] > allowed:
            h, w = probe.shape[-2:]
            _fail(attack, f"{who} returned a patch that changes {info['changed_pixels']} pixels of a {h}×{w} image, "
                          f"more than its budget allows ({allowed} pixels)",
                  "keep the patch (and its mask) inside the declared area", measured=info["changed_pixels"],
                  limit=allowed)
    return record


def _fail(attack: Any, what: str, fix: str, **numbers: float) -> None:
    provider = provider_of(attack)
    builtin = is_builtin(attack)
    tail = "this is a bug in demtui: report it" if builtin else f"the plugin must {fix}"
    error = BudgetError(f"{what}; {tail}.", component=f"attack '{getattr(attack, 'name', '?')}'",
                        provider=provider.as_dict() if provider else None, action="checking its perturbation",
                        builtin=builtin)
    error.measured, error.limit = numbers.get("measured"), numbers.get("limit")  # type: ignore[attr-defined]
    raise error
