"""Training defenses follow the attack's budget: ε_train = eps_ratio × ε_attack unless set.

Why (issue 17): a defender left at a fixed ε while ``attack.eps`` moves trains at the wrong
budget without anyone noticing. Rule: a training defense that declares ``eps_ratio`` has
its budget parameters (``eps``, ``uap_eps``) default to *empty*, which means
``eps_ratio × attack.eps`` (the paper trains at the attack's budget: ratio 1). An explicit
value always wins. An attack without an L∞ ε (a patch) couples to the paper's 10/255.
A defender that ends up below the attack's ε gets a one-line warning.

Torch-free: ``demtui show`` and spec resolution use it.
"""

from __future__ import annotations

from typing import Any

#: Defense parameters that are an L∞ training budget, coupled to the attack's ε.
COUPLED = ("eps", "uap_eps")
#: The parameter holding the ratio; a defense without it is not coupled.
RATIO = "eps_ratio"
#: The paper's default threat model, used when the attack has no L∞ budget (patches).
PAPER_EPS = 10 / 255


def coupled_value(params: dict[str, Any], key: str, attack_eps: float | None) -> float:
    """The budget ``key`` resolves to: the explicit value, else eps_ratio × the attack's ε."""
    if params.get(key) is not None:
        return float(params[key])
    base = PAPER_EPS if attack_eps is None else float(attack_eps)
    return float(params.get(RATIO) or 1.0) * base


def with_recipe(defense_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Democratic Training's named recipe fills its empty values (plugins/defenses/recipes.py)."""
    if defense_name != "democratic" or "recipe" not in params:
        return params
    from demtui.plugins.defenses.recipes import apply_recipe

    return apply_recipe(params)


def couple(attack_params: dict[str, Any], defense_params: dict[str, Any],
           defense_name: str = "") -> tuple[dict[str, Any], list[str]]:
    """Fill the defense's recipe values and empty budgets from the attack's ε; return (params, warnings)."""
    defense_params = with_recipe(defense_name, defense_params)
    if RATIO not in defense_params:
        return defense_params, []
    attack_eps = attack_params.get("eps")
    out = dict(defense_params)
    notes = []
    for key in COUPLED:
        if key not in out:
            continue
        out[key] = coupled_value(out, key, attack_eps)
        if attack_eps is not None and out[key] < float(attack_eps) * (1 - 1e-6):
            notes.append(f"defense.{key} = {out[key] * 255:.3g}/255 is below attack.eps = {float(attack_eps) * 255:.3g}/255: "
                         f"the defender trains at a weaker budget than the attack (empty {key} follows the attack).")
    return out, notes
