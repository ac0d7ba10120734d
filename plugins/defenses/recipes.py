"""Named Democratic Training recipes: one parameter picks a consistent set of values.

Torch-free (spec resolution and ``demtui show`` read it). A recipe fills only the
parameters left empty, so an explicit value always wins (docs/method.md).

- ``paper``: the authors' CIFAR repair script — ε_train = the attack's ε, m = 5, lr 1e-3,
  50 epochs, then 10 clean epochs at 1e-5 (PAPER notes, "What the authors' public code does").
- ``fast``: the CPU quickstart's recipe — ε_train 1.6 × the attack's ε (16/255 against
  10/255), m = 10, lr 3e-3, 10 epochs, then 2 clean epochs at 1e-4. It repairs more in
  fewer epochs on the offline victim, at a *larger* budget than the attack's.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"eps_ratio": 1.0, "steps": 5, "lr": 1e-3, "epochs": 50, "refine_epochs": 10, "refine_lr": 1e-5},
    "fast": {"eps_ratio": 1.6, "steps": 10, "lr": 3e-3, "epochs": 10, "refine_epochs": 2, "refine_lr": 1e-4},
}
#: The parameters a recipe sets (each defaults to empty = the recipe's value).
RECIPE_KEYS = tuple(RECIPES["paper"])


def apply_recipe(params: dict[str, Any]) -> dict[str, Any]:
    """Fill the empty recipe-governed values from ``params['recipe']`` (no-op without one)."""
    name = params.get("recipe")
    if name is None:
        return params
    values = RECIPES[str(name)]
    return {**params, **{k: v for k, v in values.items() if k in params and params[k] is None}}
