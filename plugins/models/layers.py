"""Role → submodule path for any network: a known table, else a generic rule.

Known families use ``plugins/layers/tables.py`` (a table applies only when the name
matches *and* every path exists, so torchvision's and timm's "resnet18" each find
theirs). Anything else gets the generic rule: deep2, the repair layer, is the global
pool before the classifier (the paper's split point) or, without one, the module that
feeds the classifier; shallow1 … deep1 are spread evenly over the blocks before it.
"""

from __future__ import annotations

import fnmatch

from torch import nn

from demtui.components import ROLES
from demtui.plugins.layers.tables import LAYER_TABLES

_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                 nn.AdaptiveMaxPool2d, nn.AvgPool2d)
_TIMM_POOLS = ("SelectAdaptivePool2d", "AdaptiveAvgMaxPool2d", "AdaptiveCatAvgMaxPool2d")
_ANY_POOL = (*_GLOBAL_POOLS, nn.MaxPool2d, nn.AvgPool1d, nn.MaxPool1d)
_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity, nn.Flatten)
_MIN_BLOCKS = 8  # expand containers until the trunk has this many blocks to spread roles over


def resolve_layers(module: nn.Module, arch: str) -> dict[str, str]:
    """Paths valid in ``module`` for every role in ROLES, plus ``"repair"``: the repair role.

    A ``Normalized`` wrapper is looked through, and its paths come back with ``net.``.
    """
    from demtui.plugins.models.builders import Normalized

    net, prefix = (module.net, "net.") if isinstance(module, Normalized) else (module, "")
    table = _table_for(arch, dict(net.named_modules())) or _generic(net)
    return {**{role: prefix + path for role, path in table.items()}, "repair": "deep2"}


def _table_for(arch: str, names: dict[str, nn.Module]) -> dict[str, str] | None:
    ref = arch.lower()
    for table in LAYER_TABLES.values():
        globs = [g.lower() for g in table.globs]
        if any(fnmatch.fnmatch(ref, g) or fnmatch.fnmatch(ref, g.split(":", 1)[-1]) for g in globs):
            layers = dict(table.layers)
            if all(p in names for p in layers.values()):
                return layers
    return None


# --- the generic rule ------------------------------------------------------------------

def _generic(net: nn.Module) -> dict[str, str]:
    from demtui.plugins.models.builders import _classifier

    modules = dict(net.named_modules())
    order = {name: i for i, name in enumerate(modules)}
    head = _classifier(net)
    deep2 = _repair_layer(net, modules, order, head[0] if head else None)
    trunk = _trunk(modules, order, deep2)
    return dict(zip(ROLES, [*_spread(trunk or [deep2], 5), deep2], strict=True))


def _is_pool(m: nn.Module, types: tuple[type, ...] = _GLOBAL_POOLS) -> bool:
    return isinstance(m, types) or type(m).__name__ in _TIMM_POOLS


def _repair_layer(net: nn.Module, modules: dict[str, nn.Module], order: dict[str, int], head: str | None) -> str:
    """The shallowest global pool before the classifier (SE pools sit deeper), else what feeds it."""
    limit = order[head] if head else len(order)
    pools = [n for n, m in modules.items() if n and order[n] < limit and n.count(".") <= 1 and _is_pool(m)]
    if pools:
        return min(pools, key=lambda n: (n.count("."), -order[n]))
    # No pool module (DenseNet, MobileNetV2, ViT pool functionally): the sibling before the head.
    branch = head or ""
    while branch:
        parent, _, _ = branch.rpartition(".")
        siblings = [f"{parent}.{c}" if parent else c for c, _ in modules[parent].named_children()]
        before = [s for s in siblings[: siblings.index(branch)] if not isinstance(modules[s], _PASS_THROUGH)]
        if before:
            return before[-1]
        branch = parent
    children = [c for c, m in net.named_children() if not isinstance(m, _PASS_THROUGH)]
    return children[-1] if children else next((n for n in modules if n), "")


def _children(modules: dict[str, nn.Module], path: str) -> list[str]:
    return [f"{path}.{c}" if path else c for c, _ in modules[path].named_children()]


def _keep(m: nn.Module) -> bool:
    """A block worth measuring: it has weights, or it pools."""
    return _is_pool(m, _ANY_POOL) or any(True for _ in m.parameters())


def _trunk(modules: dict[str, nn.Module], order: dict[str, int], stop: str) -> list[str]:
    """Blocks computed before ``stop``, in order, expanded until there are enough to spread over."""
    def inside(path: str, root: str) -> bool:
        return path == root or path.startswith(root + ".")

    entries, pending = [], _children(modules, "")
    while pending:  # open stop's ancestors, and stop itself unless it pools (minus its last child: same output)
        path = pending.pop(0)
        if path == stop:
            pending = ([] if _is_pool(modules[stop]) else _children(modules, stop)[:-1]) + pending
        elif inside(stop, path):
            pending = _children(modules, path) + pending
        elif (order[path] < order[stop] or inside(path, stop)) and _keep(modules[path]):
            entries.append(path)
    while len(entries) < _MIN_BLOCKS:
        expandable = [e for e in entries if any(_keep(m) for m in modules[e].children())]
        if not expandable:
            break
        big = max(expandable, key=lambda e: sum(p.numel() for p in modules[e].parameters()))
        at = entries.index(big)
        entries[at:at + 1] = [c for c in _children(modules, big) if _keep(modules[c])]
    return entries


def _spread(entries: list[str], k: int) -> list[str]:
    """``k`` evenly spaced picks ending at the last entry (repeats when there are fewer)."""
    n = len(entries)
    return [entries[max(0, round((i + 1) * n / k) - 1)] for i in range(k)]
