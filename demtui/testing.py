"""Contract checks for plugin authors: run them in your own test suite.

    from demtui.testing import check_attack, check_defense, check_metadata, tiny_victim

    def test_my_attack_honours_the_contract():
        check_attack("my-uap")                       # from the registry, small budget
    def test_my_defense_honours_the_contract():
        check_defense("my-defense")

Each check raises ``ContractError`` naming the component, the broken rule and the fix.
They run on CPU in seconds: the victim is a width-8 SmallCNN trained for a few epochs
on the built-in offline ``shapes`` data (cached per process). The built-in plugins pass
every check (tests/test_contracts.py).

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

#: Parameters that scale cost; checks cut them to a small value so a check takes seconds.
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


def _component(kind: str, ref: str | Component) -> Component:
    if isinstance(ref, Component):
        return ref
    try:
        return _registry().get(kind, ref)
    except DemtuiError as exc:
        raise ContractError(str(exc)) from None


def check_metadata(component: Component) -> None:
    """Name, summary, parameter defaults and the entry callable are usable."""
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9._:-]*", component.name):
        _fail(component, "has a name that is not lower-case letters, digits, '.', '_', ':' or '-'", "rename it")
    if not component.summary or len(component.summary) > 160:
        _fail(component, "needs a one-line summary of at most 160 characters", "write one")
    try:
        component.params.validate(component.params.defaults(), owner=component.name)
    except DemtuiError as exc:
        _fail(component, f"has defaults its own schema rejects ({exc})", "fix the Param defaults")
    if component.entry:
        try:
            fn = component.load()
        except DemtuiError as exc:
            _fail(component, f"cannot load its entry ({exc})", "fix the 'module:callable' entry")
        if not callable(fn):
            _fail(component, "has an entry that is not callable", "point entry at a function")


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
    from demtui.perturbation import AdditivePerturbation, Perturbation, load_perturbation

    attack = _component("attack", ref)
    check_metadata(attack)
    if target is not None and not attack.targeted:
        target = None
    if target is None and not attack.untargeted:
        _fail(attack, "declares neither targeted nor untargeted mode", "set targeted=True or untargeted=True")
    model, x, y, x_test, _ = tiny_victim()
    values = small_budget(attack.params, **(params or {}))
    data = AttackData(x=x[:200], y=y[:200], num_classes=10, layer="gap")

    def run() -> Perturbation:
        return attack.load()(model, data, target, dict(values), _ctx(seed))

    first = run()
    if not isinstance(first, Perturbation):
        _fail(attack, f"returned {type(first).__name__}", "return a demtui.perturbation.Perturbation")
    xb = x_test[:32].float() / 255
    out = first.apply(xb)
    if out.shape != xb.shape or not torch.isfinite(out).all() or out.min() < 0 or out.max() > 1:
        _fail(attack, "produced images outside [0, 1] or of another shape", "clamp x + δ to [0, 1] in apply")
    eps = values.get("eps")
    if isinstance(first, AdditivePerturbation) and eps is not None and (out - xb).abs().max() > eps + 1e-6:
        _fail(attack, f"exceeded its L∞ budget {eps:.5f}", "project δ onto [−ε, ε] after every step")
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
    """Run the defense on the tiny victim: a DefenseResult, a working model, original untouched, reload."""
    import copy

    import torch

    from demtui.contracts import DefenseData, DefenseResult

    defense = _component("defense", ref)
    check_metadata(defense)
    model, x, y, x_test, _ = tiny_victim()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    values = small_budget(defense.params, **(params or {}))
    data = DefenseData(x=x[:128], y=y[:128], num_classes=10, layer="gap", targets=[2])
    fn = defense.load()
    result = fn(copy.deepcopy(model), data, dict(values), _ctx(seed))
    if not isinstance(result, DefenseResult):
        _fail(defense, f"returned {type(result).__name__}", "return a demtui.contracts.DefenseResult")
    if any(not torch.equal(v, model.state_dict()[k]) for k, v in original.items()):
        _fail(defense, "changed the model it was not given", "work on the copy the engine passes")
    xb = x_test[:16].float() / 255
    with torch.no_grad():
        logits = result.model.eval()(xb)
    if logits.shape != (16, 10) or not torch.isfinite(logits).all():
        _fail(defense, "returned a model whose outputs are not finite (N, classes) logits", "check the wrapper")
    if result.wrapper is not None:
        rebuild = getattr(fn, "rebuild", None)
        if rebuild is None:
            _fail(defense, "returned a wrapper but its entry has no rebuild()", "attach rebuild to the entry callable")
        fresh = rebuild(copy.deepcopy(model), result.wrapper)
        fresh.load_state_dict(result.model.state_dict())
        with torch.no_grad():
            if not torch.allclose(fresh.eval()(xb), logits, atol=1e-5):
                _fail(defense, "does not reload to the same model from its wrapper JSON", "make rebuild deterministic")
    return result
