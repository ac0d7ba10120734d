"""Built-in entropy-layer maps: which submodules are shallow/middle/deep per architecture.

Metadata only (no torch import), so `demtui list layers` stays instant. Models no map
matches still get roles: the builders' generic rule (plugins/models/layers.py).
"""

from demtui.components import LayerMap
from demtui.hookspecs import hookimpl
from demtui.plugins.layers.tables import LAYER_TABLES


@hookimpl
def demtui_entropy_layers() -> list[LayerMap]:
    return [LayerMap(name=f"{name}-layers", summary=t.summary, matches=t.globs, layers=t.layers, repair="deep2")
            for name, t in LAYER_TABLES.items()]
