"""The engine's side of the plugin boundary: every call into component code goes through here.

Stages stay plain functions; this module holds what they need to call plugin code safely
(:mod:`demtui.blame`), check what it returns (:mod:`demtui.budget`) and read only the
parameters a component declares (:class:`demtui.components.Defense`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from demtui.blame import blame, describe, plugin_error
from demtui.budget import check_perturbation, probe_images
from demtui.components import Component, Defense
from demtui.contracts import AttackData
from demtui.perturbation import Perturbation


def run_components(spec: Any, registry: Any) -> list[Component]:
    """The components a spec uses: model source, dataset, attack and (if any) defense."""
    out: list[Component] = [registry.model_source(spec.model.name)[0], registry.get("dataset", spec.dataset.name),
                            registry.get("attack", spec.attack.name)]
    if spec.defense is not None:
        out.append(registry.get("defense", spec.defense.name))
    return out


def preload(spec: Any, registry: Any) -> None:
    """Import every component's code before any work, so a broken plugin fails in seconds, not after an attack.

    A wrapping defense's ``rebuild`` is resolved here too.
    """
    for comp in run_components(spec, registry):
        if comp.entry:
            comp.load()
        if isinstance(comp, Defense) and comp.wraps:
            comp.load_rebuild()


def craft(attack: Component, generate: Any, model: nn.Module, data: AttackData, target: int | None,
          params: dict[str, Any], ctx: Any, label: str) -> tuple[Perturbation, dict[str, Any]]:
    """One guarded generate call, then the budget check; returns the perturbation and the budget record."""
    with blame(attack, f"crafting the UAP for {label}"):
        pert = generate(model, data, target, dict(params), ctx)
    record = check_perturbation(attack, pert, params, probe_images(data.x))
    return pert, record


#: Said when a defense that declares no subset parameters fails: it got no images, on purpose.
NO_SUBSET_HINT = ("it received no repair images because it declares no subset parameters: add "
                  "demtui.api.subset_params() to its params, or fix or update the plugin")


def subset_size(defense: Defense, params: dict[str, Any], train_size: int) -> int:
    """Images in the repair subset: only from the subset parameters the defense declares (else 0)."""
    declared = set(defense.params.names())
    if "subset_size" in declared and params.get("subset_size"):
        return int(params["subset_size"])
    if "subset_fraction" in declared and params.get("subset_fraction") is not None:
        return max(1, round(float(params["subset_fraction"]) * train_size))
    return 0


def defense_layer(defense: Defense, params: dict[str, Any], layers: dict[str, str], run_layer: str) -> str:
    """The module path for DefenseData.layer: the defense's declared ``layer`` param resolved, else the run's."""
    if Defense.LAYER_PARAM not in defense.params.names():
        return run_layer
    wanted = params.get(Defense.LAYER_PARAM) or ""
    return layers.get(wanted, wanted) if wanted else run_layer


def empty_subset(like: torch.Tensor, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.empty((0, *like.shape[1:]), dtype=torch.uint8, device=device),
            torch.empty((0,), dtype=torch.long, device=device))


def known_uaps(state: Any, defense: Defense, x: torch.Tensor, y: torch.Tensor, layer: str) -> list[Perturbation]:
    """For a defense declaring ``known_uaps``: the run's attack, crafted on the repair subset, one per target.

    These never are the evaluation UAPs (those come from the attack's own crafting images);
    the seed is offset so the draws differ too. Each is budget-checked like any other.
    """
    spec, ctx = state.spec, state.ctx
    if x.shape[0] == 0:
        raise plugin_error(defense, "preparing its known UAPs", ValueError("the repair subset is empty"),
                           hint="a defense with known_uaps=True must also declare subset parameters "
                                "(demtui.api.subset_params())")
    attack = state.registry.get("attack", spec.attack.name)
    generate = attack.load()
    data = AttackData(x=x, y=y, num_classes=len(state.prep.classes), layer=layer)
    model = state.prep.built.module
    out = []
    seed = ctx.seed
    try:
        ctx.seed = seed + 7919  # another draw than the evaluation UAPs
        for key in state.keys:
            ctx.log(f"defend: crafting a known {spec.attack.name} UAP for {key} on the repair subset "
                    f"({describe(defense)} asked for known UAPs)")
            pert, _ = craft(attack, generate, model, data, state.target_of(key), spec.attack.params, ctx,
                            f"{key} (known UAP for the defense)")
            out.append(pert)
    finally:
        ctx.seed = seed
    return out


def check_defended(defense: Defense, model: nn.Module, probe: torch.Tensor, num_classes: int) -> None:
    """The defended model answers a small batch with finite (N, classes) logits, or the defense is blamed."""
    with blame(defense, "checking the model it returned"), torch.no_grad():
        was = model.training
        model.eval()
        logits = model(probe)
        model.train(was)
        ok = (isinstance(logits, torch.Tensor) and tuple(logits.shape) == (probe.shape[0], num_classes)
              and bool(torch.isfinite(logits.float()).all()))
    if not ok:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise plugin_error(defense, "checking the model it returned",
                           ValueError(f"the defended model gave {shape} outputs for a batch of {probe.shape[0]} "
                                      f"images, not finite ({probe.shape[0]}, {num_classes}) logits"),
                           hint="return a model that maps float images in [0, 1] to class logits")
