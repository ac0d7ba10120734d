"""Built-in entropy-layer maps: which submodules are shallow/middle/deep per architecture.

Metadata only (no torch import), so `demtui list layers` stays instant.
"""

from demtui.components import LayerMap
from demtui.hookspecs import hookimpl
from demtui.plugins.layers.tables import LAYER_TABLES


@hookimpl
def demtui_entropy_layers() -> list[LayerMap]:
    return [LayerMap(name=f"{name}-layers", summary=summary, entry="", matches=globs, layers=layers, repair="deep2")
            for name, (globs, layers, summary) in LAYER_TABLES.items()]
