"""demtui: test vision models against universal adversarial perturbations and repair them.

Importing this package is cheap (no torch); heavy modules load when a run starts.
"""

__version__ = "0.1.0"
