"""Role → submodule path for any network: a known table, else a generic rule.

The generic rule spreads shallow1 … deep1 evenly over the network's convolution (or
linear) layers in execution order and takes the last pooling layer before the
classifier as deep2, the repair layer (the paper's split point for every family it
studies).
"""

from __future__ import annotations

import fnmatch

from torch import nn

from demtui.components import ROLES
from demtui.plugins.layers.tables import LAYER_TABLES

_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool1d)


def _table_for(arch: str, names: dict[str, nn.Module]) -> dict[str, str] | None:
    for globs, layers, _ in LAYER_TABLES.values():
        refs = [g.split(":", 1)[-1] for g in globs]
        if any(fnmatch.fnmatch(arch.lower(), r.lower()) for r in refs):
            table = dict(layers)
            if all(p in names for p in table.values()):
                return table
    return None


def resolve_layers(module: nn.Module, arch: str) -> dict[str, str]:
    """Paths valid in ``module`` for every role in ROLES, plus ``"repair"``: the repair role."""
    names = dict(module.named_modules())
    table = _table_for(arch, names) or _generic(module)
    return {**table, "repair": "deep2"}


def _generic(module: nn.Module) -> dict[str, str]:
    ordered = [(n, m) for n, m in module.named_modules() if n]
    last_linear = max((i for i, (_, m) in enumerate(ordered) if isinstance(m, nn.Linear)), default=len(ordered))
    before_head = ordered[:last_linear]
    pools = [n for n, m in before_head if isinstance(m, _POOLS) or type(m).__name__ == "SelectAdaptivePool2d"]
    pools = pools or [n for n, m in before_head if isinstance(m, nn.Flatten)]
    compute = [n for n, m in ordered if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not compute:
        compute = [n for n, m in ordered if not list(m.children())]
    if not compute:
        raise ValueError("the model has no layers to measure entropy on")
    deep2 = pools[-1] if pools else (compute[-2] if len(compute) > 1 else compute[-1])
    picks = [compute[min(len(compute) - 1, round(k * (len(compute) - 1) / 5))] for k in range(5)]
    return dict(zip(ROLES, [*picks, deep2], strict=True))
