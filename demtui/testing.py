"""Contract checks for plugin authors: run them in your own test suite.

    from demtui.testing import check_attack, check_defense, check_light_import, check_metadata

    def test_my_attack_honours_the_contract():
        check_attack("my-uap")                       # from the registry, small budget
    def test_my_defense_honours_the_contract():
        check_defense("my-defense")
    def test_metadata():
        check_metadata("my-uap", kind="attack")      # or pass the record itself
    def test_hooks_stay_light():
        check_light_import("my_plugin")              # importing it does not import torch

Each check raises ``ContractError`` naming the component, the broken rule and the fix.
They run on CPU in seconds: the victim is a width-8 SmallCNN trained for a few epochs
on the built-in offline ``shapes`` data (cached per process). The built-in plugins pass
every check (tests/test_contracts.py). ``check_attack`` measures the perturbation with
the engine's own budget check (:mod:`demtui.budget`), whatever its class.

Importing this module is cheap; torch is imported when a check runs.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from demtui.components import Attack, Component, Defense
from demtui.errors import DemtuiError
from demtui.params import ParamSchema

#: Parameters that scale cost (iterations, epochs, …): the checks cut each one a component
#: declares down to this value (or its declared minimum), so a check takes seconds. Name your
#: cost knobs like these and the checks stay fast; pass ``params=`` to a check to set others.
BUDGET_PARAMS = {"iterations": 8, "epochs": 1, "steps": 2, "refine_epochs": 0, "train_steps": 4, "runs": 1,
                 "reverse_steps": 2, "max_passes": 1, "inner_steps": 2, "outer_iterations": 2, "passes": 1,
                 "max_iter": 3, "subset_size": 64, "batch_size": 16}


class ContractError(AssertionError):
    """A plugin broke the demtui contract (an AssertionError so pytest shows it plainly)."""


def _fail(component: Component, rule: str, fix: str) -> None:
    raise ContractError(f"{component.kind} '{component.name}' {rule}; {fix}.")


def small_budget(params: ParamSchema, **overrides: Any) -> dict[str, Any]:
    """The component's defaults with cost-scaling parameters cut down (within their bounds)."""
    values = params.defaults()
    for p in params.params:
        if p.name in BUDGET_PARAMS and p.type == "int":
            small = BUDGET_PARAMS[p.name]
            if p.min is not None:
                small = max(small, int(p.min))
            values[p.name] = small
    values.update(overrides)
    return params.validate(values, owner="check")


def _registry():
    from demtui.registry import get_registry

    return get_registry()


def _component(kind: str | None, ref: str | Component) -> Component:
    """The record itself, or the one the registry knows as ``ref`` (``name`` or ``name@plugin``)."""
    if isinstance(ref, Component):
        return ref
    registry = _registry()
    try:
        if kind is not None:
            return registry.get(kind, ref)
        found = registry.find(ref)
    except DemtuiError as exc:
        raise ContractError(str(exc)) from None
    if len(found) != 1:
        what = "no component" if not found else f"{len(found)} components ({', '.join(c.kind for c in found)})"
        raise ContractError(f"'{ref}' names {what}; pass kind='attack' (or another kind) or the record itself.")
    return found[0]


def check_metadata(component: str | Component, kind: str | None = None) -> None:
    """Name, summary, parameter defaults and rules, the entry callable and (wrappers) rebuild are usable.

    ``component`` is a record, or a name the registry knows (``kind`` narrows it).
    """
    from demtui.components import Defense

    component = _component(kind, component)
    problems = component.check()
    if problems:
        _fail(component, f"has a broken record ({problems[0]})", "fix the record in the plugin's hook")
    if not component.summary or len(component.summary) > 160:
        _fail(component, "needs a one-line summary of at most 160 characters", "write one")
    if component.entry:
        try:
            component.load()
            if isinstance(component, Defense) and component.wraps:
                component.load_rebuild()
        except DemtuiError as exc:
            _fail(component, f"cannot load its code ({exc})", "fix the 'module:callable' entry")


def check_light_import(module: str) -> None:
    """Importing ``module`` and calling its hooks in a fresh interpreter does not import torch (timm, torchvision)."""
    from demtui.plugin_check import light_import_problems

    problems = light_import_problems("builtin", module, module)
    if problems:
        raise ContractError(" ".join(problems))


def tiny_victim(seed: int = 0):
    """(model, x_train, y_train, x_test, y_test): a small trained victim on offline data.

    Trained once per process and seed; every call gets its own copy of the model (in eval
    mode), so a test that trains it or flips BatchNorm to train mode cannot leak into the next.
    A width-8 SmallCNN on 2000 images, 6 epochs with ±8/255 noise augmentation: CAcc ≈ 0.97,
    and ±10/255 sign noise flips about 11% of its test predictions.
    """
    import copy

    model, x, y, x_test, y_test = _trained_tiny_victim(seed)
    return copy.deepcopy(model).eval(), x.clone(), y.clone(), x_test.clone(), y_test.clone()


@functools.lru_cache(maxsize=2)
def _trained_tiny_victim(seed: int):
    import torch

    from demtui.plugins.datasets.shapes_gen import generate_shapes
    from demtui.plugins.models.small_cnn import SmallCNN
    from demtui.training import train_classifier

    torch.manual_seed(seed)
    x, y = generate_shapes(2000, seed=seed)
    x_test, y_test = generate_shapes(300, seed=seed + 99)
    model = SmallCNN(10, width=8)
    train_classifier(model, x, y, epochs=6, lr=0.05, batch_size=64, noise_eps=8 / 255, seed=seed)
    return model.eval(), x, y, x_test, y_test


def _ctx(seed: int):
    import torch

    from demtui.context import RunContext

    return RunContext(device=torch.device("cpu"), seed=seed, artifacts=Path(tempfile.mkdtemp(prefix="demtui-check-")))


def check_attack(ref: str | Attack, *, target: int | None = 2, params: dict[str, Any] | None = None,
                 seed: int = 0) -> Any:
    """Run the attack on the tiny victim and check bounds, [0,1] outputs, save/load and determinism.

    Returns the Perturbation so a test can make further checks of its own.
    """
    import torch

    from demtui.contracts import AttackData
    from demtui.perturbation import Perturbation, load_perturbation

    attack = _component("attack", ref)
    check_metadata(attack)
    if target is not None and not attack.targeted:
        target = None
    if target is None and not attack.untargeted:
        target = 2
    model, x, y, x_test, _ = tiny_victim()
    values = small_budget(attack.params, **(params or {}))
    data = AttackData(x=x[:200], y=y[:200], num_classes=10, layer="gap")

    def run() -> Perturbation:
        return attack.load()(model, data, target, dict(values), _ctx(seed))

    first = run()
    from demtui.blame import BudgetError, PluginRunError
    from demtui.budget import check_perturbation, probe_images

    try:
        check_perturbation(attack, first, values, probe_images(x_test[:8]))
    except BudgetError as exc:
        raise ContractError(str(exc)) from None
    except PluginRunError as exc:
        raise ContractError(f"{exc}\n{exc.trace}") from None
    xb = x_test[:32].float() / 255
    out = first.apply(xb)
    with tempfile.TemporaryDirectory() as tmp:
        path = first.save(Path(tmp) / "p.safetensors")
        again = load_perturbation(path)
        if not torch.equal(again.apply(xb), out):
            _fail(attack, "does not survive a save/load round trip bit-exactly", "save every tensor apply needs")
    second = run()
    if not torch.equal(second.apply(xb), out):
        _fail(attack, "is not reproducible under a fixed seed on CPU", "draw randomness from ctx.seed")
    return first


def check_defense(ref: str | Defense, *, params: dict[str, Any] | None = None, seed: int = 0) -> Any:
    """Run the defense on the tiny victim: a DefenseResult, a working model, original untouched, reload.

    The defense gets what the engine would give it: a repair subset only when it declares
    subset parameters, its own ``layer`` resolved, known UAPs (±ε sign noise here) when it
    declares ``known_uaps``.
    """
    import copy

    import torch

    from demtui.contracts import DefenseData, DefenseResult
    from demtui.perturbation import AdditivePerturbation

    defense = _component("defense", ref)
    check_metadata(defense)
    model, x, y, x_test, _ = tiny_victim()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    values = small_budget(defense.params, **(params or {}))
    declared = set(defense.params.names())
    n = 128 if declared & set(Defense.SUBSET_PARAMS) else 0
    layer = "gap"  # the tiny victim's repair layer (roles such as deep2 need a real model's layer map)
    gen = torch.Generator().manual_seed(seed)
    uaps = [AdditivePerturbation.sign_noise((1, *x.shape[1:]), 10 / 255, gen)] if defense.known_uaps else []
    data = DefenseData(x=x[:n], y=y[:n], num_classes=10, layer=layer, targets=[2], uaps=uaps)
    fn = defense.load()
    try:
        result = fn(copy.deepcopy(model), data, dict(values), _ctx(seed))
    except DemtuiError:
        raise
    except Exception as exc:
        if n == 0 and not declared & set(Defense.SUBSET_PARAMS):
            _fail(defense, f"raised {type(exc).__name__}: {exc} on an empty repair subset",
                  "declare demtui.api.subset_params() in its params to receive clean images")
        raise
    if not isinstance(result, DefenseResult):
        _fail(defense, f"returned {type(result).__name__}", "return a demtui.api.DefenseResult")
    if any(not torch.equal(v, model.state_dict()[k]) for k, v in original.items()):
        _fail(defense, "changed the model it was not given", "work on the copy the engine passes")
    xb = x_test[:16].float() / 255
    with torch.no_grad():
        logits = result.model.eval()(xb)
    if logits.shape != (16, 10) or not torch.isfinite(logits).all():
        _fail(defense, "returned a model whose outputs are not finite (N, classes) logits", "check the wrapper")
    if defense.wraps and result.wrapper is None:
        _fail(defense, f"declares changes='{defense.changes}' but returned wrapper=None",
              "return DefenseResult(wrapper={...}) describing the wrapper so rebuild can recreate it")
    if result.wrapper is not None:
        if not defense.wraps:
            _fail(defense, "returned a wrapper but declares changes='weights'",
                  "declare changes='wrapper' (or 'purifier') and provide rebuild")
        rebuild = defense.load_rebuild()
        fresh = rebuild(copy.deepcopy(model), result.wrapper)
        fresh.load_state_dict(result.model.state_dict())
        with torch.no_grad():
            if not torch.allclose(fresh.eval()(xb), logits, atol=1e-5):
                _fail(defense, "does not reload to the same model from its wrapper JSON", "make rebuild deterministic")
    return result
