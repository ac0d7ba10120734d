"""The robustness report card: after a defense, SR against five attackers, the worst one named.

Why (issue 17): "SR after" against the UAPs the run tested says little about a repaired
model. The card measures, on the *defended* model and the same evaluation images:

- ``tested``   — the UAPs the run crafted on the original model (the evaluate stage's SR);
- ``fresh``    — a fresh DF-UAP crafted on the repaired model (the paper's secondary attack);
- ``adaptive`` — the entropy-aware adaptive DF-UAP (Eq. 11, ρ 0.5) crafted on it;
- ``other``    — an attack of another family, SGA (aggregated small-batch gradients);
- ``noise``    — random noise of the tested attack's threat model (±ε, or a random patch).

Budgets: every crafted part uses the run attack's ε (10/255 for a patch attack) and, for the
DF-UAP parts, the run attack's ``iterations`` when it is a DF-UAP (else the registry's); SGA
runs ``SGA_EPOCHS`` epochs (about the quickstart DF-UAP's cost). A part the run already
measured is reused, not re-crafted: the secondary stage *is* ``fresh`` for a DF-UAP run,
``adaptive`` for an adaptive one and ``other`` for an SGA one.

``run.card`` = ``full`` (default), ``off``, or a comma list of parts, e.g. ``tested,noise``.
"""

from __future__ import annotations

from typing import Any

from demtui.errors import SpecError, did_you_mean

PARTS = ("tested", "fresh", "adaptive", "other", "noise")
#: Which attack each crafted part runs.
PART_ATTACKS = {"fresh": "df-uap", "adaptive": "adaptive-df-uap", "other": "sga"}
#: SGA's epochs in the card: ~8,000 image-passes on 1,000 crafting images (the quickstart DF-UAP: 6,400).
SGA_EPOCHS = 2


def parts_of(value: str | None) -> list[str]:
    """``full`` → every part; ``off``/empty → none; else a comma list, checked."""
    text = (value or "off").strip().lower()
    if text == "full":
        return list(PARTS)
    if text in ("off", "none", ""):
        return []
    parts = [p.strip() for p in text.split(",") if p.strip()]
    for p in parts:
        if p not in PARTS:
            raise SpecError(f"run.card part '{p}' does not exist." + did_you_mean(p, PARTS)
                            + f" Use full, off, or a comma list of: {', '.join(PARTS)}.")
    return [p for p in PARTS if p in parts]


def part_params(part: str, run_attack: str, run_params: dict[str, Any], registry: Any) -> dict[str, Any]:
    """The params a crafted part runs with: the registry's defaults at the run attack's budget."""
    name = PART_ATTACKS[part]
    schema = registry.get("attack", name).params
    values = schema.defaults()
    if run_params.get("eps") is not None:
        values["eps"] = run_params["eps"]
    if name in ("df-uap", "adaptive-df-uap") and run_attack in ("df-uap", "adaptive-df-uap"):
        values["iterations"] = run_params.get("iterations", values["iterations"])
    if name == "sga":
        values["epochs"] = SGA_EPOCHS
    return schema.validate(values, owner=f"card {part}")


def reused_part(run_attack: str, run_params: dict[str, Any]) -> str | None:
    """The part the secondary stage already measured (same attack on the repaired model), if any."""
    if run_attack == "df-uap" and float(run_params.get("rho") or 0) == 0:
        return "fresh"
    if run_attack == "adaptive-df-uap" or (run_attack == "df-uap" and float(run_params.get("rho") or 0) > 0):
        return "adaptive"
    if run_attack == "sga":
        return "other"
    return None


def mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and v == v]
    return round(sum(vals) / len(vals), 4) if vals else None


def summary_of(stage: dict[str, Any] | None) -> dict[str, Any] | None:
    """``summary.card``: mean SR (fooling rate if non-targeted) per part and the worst part."""
    if not stage or not stage.get("parts"):
        return None
    out: dict[str, Any] = {part: info.get("sr") for part, info in stage["parts"].items()}
    out["worst"] = stage.get("worst")
    out["worst_sr"] = stage.get("worst_sr")
    return out


def worst_of(parts: dict[str, dict[str, Any]]) -> tuple[str | None, float | None]:
    """The part with the highest SR (noise included: a defense noise beats is named so)."""
    scored = [(info["sr"], part) for part, info in parts.items() if info.get("sr") is not None]
    if not scored:
        return None, None
    sr = max(v for v, _ in scored)
    return next(part for v, part in scored if v == sr), sr  # a tie names the first part in card order
