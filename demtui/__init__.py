"""demtui: test vision models against universal adversarial perturbations and repair them.

Importing this package is cheap (no torch); heavy modules load when a run starts.
"""

import os as _os

__version__ = "0.1.0"


def _find_checkout_plugins() -> None:
    """Let ``demtui.plugins`` resolve from a source checkout run with ``PYTHONPATH=.``.

    Installed, setuptools maps the top-level ``plugins/`` folder to ``demtui.plugins``;
    run from a checkout without installing (a GPU box with its own torch, say), nothing
    does. Adding the checkout root to this package's search path makes ``plugins/``
    its ``plugins`` subpackage, the same files either way.
    """
    here = _os.path.dirname(_os.path.abspath(__file__))
    root = _os.path.dirname(here)
    if (not _os.path.isdir(_os.path.join(here, "plugins"))
            and _os.path.isfile(_os.path.join(root, "plugins", "__init__.py"))
            and _os.path.isfile(_os.path.join(root, "registry.toml"))
            and root not in __path__):
        __path__.append(root)


_find_checkout_plugins()
