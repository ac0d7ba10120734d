"""demtui's public plugin API: the one module a plugin imports, on both sides of the contract.

Everything here is supported: it keeps working for every demtui that reports the same
:data:`API_VERSION` (bumped only when a hook or record changes incompatibly; additions
are not breaking). Anything imported from elsewhere in ``demtui`` is internal and may move.

The metadata side (your plugin's hooks; must stay torch-free) imports names that load
instantly::

    from demtui.api import Attack, Defense, Param, Rule, hookimpl, schema, subset_params, training_params

The code side (an entry module, imported only when a run uses the component) imports
the heavy names, which load torch the first time one is used::

    from demtui.api import AdditivePerturbation, DefenseResult, project_linf, sample_batch, train_defense

docs/plugins.md documents every name; tests/test_api.py checks that each one resolves and
that importing this module does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from demtui.blame import BudgetError, PluginRunError
from demtui.components import (Attack, DatasetSource, Defense, ExecutorSource, LayerMap, ModelSource, ObserverSource,
                               Provider)
from demtui.errors import DataError, DemtuiError, ModelError, ParamError, RunError, SpecError
from demtui.hookspecs import API_VERSION, hookimpl
from demtui.params import Param, ParamSchema, Rule, schema

#: Heavy names, imported on first use (PEP 562): name → "module:attribute".
_LAZY = {
    # what entry callables receive and return (demtui.contracts)
    "AttackData": "demtui.contracts:AttackData",
    "DefenseData": "demtui.contracts:DefenseData",
    "DefenseResult": "demtui.contracts:DefenseResult",
    "BuiltModel": "demtui.contracts:BuiltModel",
    "DatasetSplits": "demtui.contracts:DatasetSplits",
    "RunContext": "demtui.context:RunContext",
    "ObserverContext": "demtui.observers:ObserverContext",
    # perturbations and projections
    "Perturbation": "demtui.perturbation:Perturbation",
    "AdditivePerturbation": "demtui.perturbation:AdditivePerturbation",
    "load_perturbation": "demtui.perturbation:load_perturbation",
    "project_linf": "demtui.perturbation:project_linf",
    "project_image": "demtui.perturbation:project_image",
    # attack helpers: losses, batching, progress/stop
    "margin_loss": "demtui.plugins.attacks.df_uap:margin_loss",
    "clipped_ce": "demtui.plugins.attacks.common:clipped_ce",
    "attack_labels": "demtui.plugins.attacks.common:attack_labels",
    "predict": "demtui.plugins.attacks.common:predict",
    "as_float": "demtui.plugins.attacks.common:as_float",
    "sample_batch": "demtui.plugins.attacks.common:sample_batch",
    "epoch_batches": "demtui.plugins.attacks.common:epoch_batches",
    "report_progress": "demtui.plugins.attacks.common:report",
    "stopped": "demtui.plugins.attacks.common:stopped",
    "eval_mode": "demtui.plugins.attacks.common:eval_mode",
    "Progress": "demtui.plugins.attacks.common:Progress",
    "Stop": "demtui.plugins.attacks.common:Stop",
    # the fine-tuning loop: a training defense is a batch loss
    "train_defense": "demtui.toolkit:train_defense",
    "loop_options": "demtui.toolkit:loop_options",
    "finetune": "demtui.plugins.defenses.finetune:finetune",
    "BatchLoss": "demtui.plugins.defenses.finetune:BatchLoss",
    "mixed_loss": "demtui.plugins.defenses.finetune:mixed_loss",
    "paired_forward": "demtui.plugins.defenses.finetune:paired_forward",
    "set_train_mode": "demtui.plugins.defenses.finetune:set_train_mode",
    "probe": "demtui.plugins.defenses.finetune:probe",
    # the engine's own budget check, for an author's tests
    "check_perturbation": "demtui.budget:check_perturbation",
}


def subset_params(fraction: float = 0.05, size: int | None = None) -> tuple[Param, ...]:
    """The parameters that size a defense's clean repair subset (the engine reads exactly these).

    A defense that declares none gets an empty subset. The paper repairs with ≤ 5% of the
    training split (Sun et al., ICLR 2025), hence the default ``fraction``.
    """
    return (
        Param("subset_fraction", "float", fraction, "Share of the training split used as the clean repair subset.",
              min=0, max=1, min_inclusive=False),
        Param("subset_size", "int", size, "Exact number of training images (overrides the fraction).", min=1,
              nullable=True),
    )


def layer_param(default: str = "", help: str = "Layer (role such as deep2, or a module path); empty = the run's "
                                                 "layer.") -> Param:
    """A ``layer`` parameter: the engine resolves it to a module path and passes it as ``DefenseData.layer``."""
    return Param("layer", "str", default, help)


def training_params(epochs: int = 50, lr: float = 1e-3, bn: bool = True, refine: bool = True) -> tuple[Param, ...]:
    """The fine-tuning loop's knobs (epochs, lr, momentum, …), as every built-in training defense declares them."""
    from demtui.plugins.defenses import _loop

    return _loop(epochs=epochs, lr=lr, bn=bn, refine=refine)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'demtui.api' has no attribute '{name}'")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "API_VERSION", "hookimpl",
    "Attack", "Defense", "ModelSource", "DatasetSource", "LayerMap", "ExecutorSource", "ObserverSource",
    "Provider", "Param", "ParamSchema", "Rule", "schema", "subset_params", "layer_param", "training_params",
    "DemtuiError", "ParamError", "SpecError", "DataError", "ModelError", "RunError", "PluginRunError", "BudgetError",
    *_LAZY,
]
