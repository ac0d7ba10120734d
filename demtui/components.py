"""What a plugin provides: plain, torch-free records describing each component.

A record carries the metadata the CLI and TUI show (name, summary, Params) and an
``entry`` — ``"package.module:callable"`` — naming the heavy code, which is imported only
when the component is used. That split is what keeps ``demtui --help`` and the TUI's
catalogue free of torch.

Entry callables (the heavy side; see docs/plugins.md for full contracts):

- model:   ``build(arch: str | None, num_classes: int, params: dict, ctx) -> BuiltModel``
- dataset: ``load(params: dict, ctx) -> DatasetSplits``
- attack:  ``generate(model, data: AttackData, target: int | None, params: dict, ctx) -> Perturbation``
- defense: ``apply(model, data: DefenseData, params: dict, ctx) -> DefenseResult``

A record is checked when it is made. Outside the registry a broken record raises
PluginError at once; while the registry collects a plugin's hooks the checks are
deferred (:func:`demtui.params.deferred_checks`), so one bad record is reported by name
and skipped while the plugin's other records load.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from demtui.errors import DemtuiError, PluginError
from demtui.params import ParamSchema, checks_deferred

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
ROLES = ("shallow1", "shallow2", "middle1", "middle2", "deep1", "deep2")
#: ``name@plugin`` picks one provider of a name (``@`` never appears in names or ``family:arch``).
QUALIFIER = "@"


@dataclass(frozen=True)
class Provider:
    """Which plugin gave a component: recorded in results.json, spec.toml and report.md.

    ``qualifier`` is what follows ``@`` in a qualified reference (``fgsm-uap@example``):
    ``builtin`` for demtui's own, the entry-point name for an installed plugin, the module
    name (or file stem) for a local one.
    """

    plugin: str
    source: str  # builtin | local | entrypoint
    qualifier: str
    distribution: str = ""
    version: str = ""
    entry_point: str = ""  # "example = demtui_example" for an installed plugin
    module: str = ""  # the module whose hooks registered the component
    folder: str = ""  # a local plugin file's folder (on sys.path for its imports)

    def describe(self) -> str:
        if self.source == "builtin":
            return f"built-in plugin '{self.plugin}'"
        if self.source == "local":
            return f"local plugin '{self.plugin}'"
        dist = " ".join(v for v in (self.distribution, self.version) if v)
        return f"plugin '{self.plugin}'" + (f" ({dist})" if dist else "")

    def as_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "source": self.source, "qualifier": self.qualifier,
                "distribution": self.distribution, "version": self.version, "entry_point": self.entry_point}


@dataclass(frozen=True)
class Component:
    """Fields every component shares; validated when the record is made."""

    name: str
    summary: str
    entry: str = ""
    params: ParamSchema = field(default_factory=ParamSchema)
    help: str = ""
    #: Set by the registry: the plugin that registered this record.
    provider: Provider | None = field(default=None, kw_only=True, compare=False, repr=False)
    #: Problems found while checks were deferred (the registry reports and skips the record).
    problems: tuple[str, ...] = field(default=(), init=False, compare=False, repr=False)
    kind: ClassVar[str] = "component"

    def __post_init__(self) -> None:
        found = tuple(self.check())
        if found and not checks_deferred():
            raise PluginError(found[0])
        object.__setattr__(self, "problems", found)

    def check(self) -> list[str]:
        """Every problem of this record, each one sentence naming it (subclasses add theirs)."""
        label = f"{self.kind} {self.name!r}" if not isinstance(self.name, str) else f"{self.kind} '{self.name}'"
        out = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            out.append(f"{self.kind} name {self.name!r} is invalid; use lowercase letters, digits, '-', '_' or '.'.")
        if not isinstance(self.summary, str) or not self.summary.strip() or "\n" in self.summary:
            out.append(f"{label} needs a one-line summary.")
        if not isinstance(self.params, ParamSchema):
            out.append(f"{label} must declare params with demtui.params.schema(Param(...), ...), "
                       f"not a {type(self.params).__name__}.")
            return out
        bad = [p.problem for p in self.params if p.problem]
        out += [f"{label}: {problem}" for problem in bad]
        if not bad:
            try:
                self.params.validate(self.params.defaults(), owner=str(self.name))
            except DemtuiError as exc:
                out.append(f"{label}: its defaults break its own rules ({exc})")
        if self.entry and not (isinstance(self.entry, str) and _ENTRY.match(self.entry)):
            out.append(f"{label} has entry {self.entry!r}; write it as 'package.module:callable'.")
        return out

    @property
    def ref(self) -> str:
        """The fully qualified reference ``name@plugin`` (just the name when unregistered)."""
        return f"{self.name}{QUALIFIER}{self.provider.qualifier}" if self.provider else self.name

    def load(self) -> Any:
        """Import and return the entry callable (the only place heavy code is imported).

        Any failure — a missing module, a syntax error, an exception at import, a missing
        or non-callable attribute — is a PluginRunError naming this component's plugin.
        """
        return _import_entry(self, self.entry)


def _import_entry(component: Component, entry: str) -> Any:
    from demtui.blame import import_error, plugin_error

    module_name, _, attr = entry.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - every import failure is the plugin's, worded for its author
        if isinstance(exc, DemtuiError):
            raise
        raise import_error(component, exc) from exc
    if not callable(obj):
        raise plugin_error(component, f"importing its code {entry!r}",
                           TypeError(f"{entry} is a {type(obj).__name__}, not a function"),
                           hint="point the entry at a function") from None
    return obj


@dataclass(frozen=True)
class ModelSource(Component):
    """Builds networks. With ``family=True`` the name is a prefix: ``torchvision:resnet50``."""

    family: bool = False
    examples: tuple[str, ...] = ()
    kind: ClassVar[str] = "model"


@dataclass(frozen=True)
class DatasetSource(Component):
    """Provides train/test splits of uint8 images in [0, 255] and their class names."""

    offline: bool = False
    #: Class names known without loading the data (metadata: the TUI checks targets against them).
    classes: tuple[str, ...] = ()
    #: Number of classes when known but the names are not listed (0: unknown, or len(classes)).
    num_classes: int = 0
    kind: ClassVar[str] = "dataset"


@dataclass(frozen=True)
class LayerMap(Component):
    """Named entropy layers of one architecture family (paper Fig. 2: shallow → deep).

    ``matches`` are glob patterns over model references (``torchvision:resnet*``);
    ``layers`` maps the roles in ROLES to submodule paths of the *unwrapped* network;
    ``repair`` names the role Democratic Training uses (the last pooling/dense layer).
    """

    matches: tuple[str, ...] = ()
    layers: tuple[tuple[str, str], ...] = ()
    repair: str = "deep2"
    kind: ClassVar[str] = "layers"

    def check(self) -> list[str]:
        out = super().check()
        roles = dict(self.layers)
        if self.repair not in roles:
            out.append(f"layer map '{self.name}' names repair role '{self.repair}' but defines only "
                       f"{', '.join(roles) or 'no roles'}.")
        return out

    def applies_to(self, model_ref: str) -> bool:
        return any(fnmatch.fnmatch(model_ref.lower(), pat.lower()) for pat in self.matches)

    def as_dict(self) -> dict[str, str]:
        return dict(self.layers)


#: The parameter that bounds each threat model unless the record names another (``budget=``).
BUDGET_DEFAULTS = {"linf": "eps", "generator": "eps", "patch": "area"}


@dataclass(frozen=True)
class Attack(Component):
    """Crafts a universal perturbation; says which threat modes it supports and its budget.

    ``threat`` is the promise the engine enforces on every perturbation the attack returns
    (docs/plugins.md, "Budgets"): ``linf`` and ``generator`` — an additive δ with
    ‖δ‖∞ ≤ the ``budget`` parameter (default ``eps``); ``patch`` — at most the patch area
    the ``budget`` parameter (default ``area``, a fraction of the image; an ``int`` parameter
    ``size`` overrides it with a side in pixels) allows.
    """

    targeted: bool = True
    untargeted: bool = False
    threat: Literal["linf", "patch", "generator"] = "linf"
    #: The parameter holding the budget ("" = ``eps`` for linf/generator, ``area`` for patch).
    budget: str = field(default="", kw_only=True)
    kind: ClassVar[str] = "attack"

    @property
    def budget_param(self) -> str:
        return self.budget or BUDGET_DEFAULTS.get(self.threat, "eps")

    def check(self) -> list[str]:
        out = super().check()
        if self.threat not in BUDGET_DEFAULTS:
            out.append(f"attack '{self.name}' has threat {self.threat!r}; use one of {', '.join(BUDGET_DEFAULTS)}.")
        elif isinstance(self.params, ParamSchema):
            param = self.params.get(self.budget_param)
            if param is None or param.type != "float":
                out.append(f"attack '{self.name}' declares threat '{self.threat}' but has no float parameter "
                           f"'{self.budget_param}' to bound it; add Param('{self.budget_param}', 'float', ...) "
                           "or name the budget parameter with budget='...'.")
        if not (self.targeted or self.untargeted):
            out.append(f"attack '{self.name}' declares neither targeted nor untargeted mode; set one to True.")
        return out


@dataclass(frozen=True)
class Defense(Component):
    """Returns a defended model; ``changes`` says how (so tables can say it too).

    What the engine gives a defense is declared, never implied:

    - the clean repair subset (``DefenseData.x``/``y``) is sized by the parameters in
      SUBSET_PARAMS *that the defense declares* (``demtui.api.subset_params()``); a defense
      declaring neither gets an empty subset, not a hidden 5%;
    - ``DefenseData.layer`` is the defense's own ``layer`` parameter resolved to a module
      path (a role such as ``deep2`` or a path) when it declares LAYER_PARAM, else the run's layer;
    - ``known_uaps=True`` fills ``DefenseData.uaps``: one UAP per run target crafted by the
      run's attack on the repair subset (never the evaluation UAPs);
    - ``changes="wrapper"`` or ``"purifier"`` needs ``rebuild(original_model, wrapper) -> module``:
      named by ``rebuild="module:callable"`` or attached to the entry callable as ``.rebuild``;
      it is checked when the run loads the defense's code, before anything is computed.
    """

    changes: Literal["weights", "wrapper", "purifier"] = "weights"
    #: Fill DefenseData.uaps with UAPs of the run's attack crafted on the repair subset.
    known_uaps: bool = field(default=False, kw_only=True)
    #: "module:callable" that rebuilds a saved wrapper ("" = the entry callable's ``rebuild``).
    rebuild: str = field(default="", kw_only=True)
    kind: ClassVar[str] = "defense"

    SUBSET_PARAMS: ClassVar[tuple[str, str]] = ("subset_fraction", "subset_size")
    LAYER_PARAM: ClassVar[str] = "layer"

    def check(self) -> list[str]:
        out = super().check()
        if self.changes not in ("weights", "wrapper", "purifier"):
            out.append(f"defense '{self.name}' has changes={self.changes!r}; use weights, wrapper or purifier.")
        if self.rebuild and not (isinstance(self.rebuild, str) and _ENTRY.match(self.rebuild)):
            out.append(f"defense '{self.name}' has rebuild {self.rebuild!r}; write it as 'package.module:callable'.")
        return out

    @property
    def wraps(self) -> bool:
        """True when the defended model is not the original architecture (it needs rebuild)."""
        return self.changes in ("wrapper", "purifier")

    def engine_params(self) -> list[str]:
        """The parameters of this defense the engine itself reads (subset size, layer)."""
        names = set(self.params.names()) if isinstance(self.params, ParamSchema) else set()
        return [n for n in (*self.SUBSET_PARAMS, self.LAYER_PARAM) if n in names]

    def load_rebuild(self) -> Any:
        """The rebuild callable of a wrapping defense; a PluginRunError naming the fix when it has none."""
        if self.rebuild:
            return _import_entry(self, self.rebuild)
        fn = getattr(self.load(), "rebuild", None)
        if not callable(fn):
            from demtui.blame import plugin_error

            raise plugin_error(self, "loading its code", LookupError(f"changes='{self.changes}' but no rebuild"),
                               hint="a wrapping defense must provide rebuild(original_model, wrapper) -> module: "
                                    "declare Defense(rebuild='module:callable') or set entry_fn.rebuild = fn") from None
        return fn


@dataclass(frozen=True)
class ExecutorSource(Component):
    """Where runs execute (local processes, Ray, SLURM, a company scheduler).

    The entry is ``make(params: dict, ctx: demtui.executors.ExecutorContext) -> Executor``;
    ``extra`` names the pip extra its code needs, for the install hint.
    """

    extra: str = ""
    kind: ClassVar[str] = "executor"


@dataclass(frozen=True)
class ObserverSource(Component):
    """Watches runs and mirrors them into an experiment tracker (TensorBoard, MLflow, W&B …).

    The entry is ``make(params: dict, ctx: demtui.observers.ObserverContext) -> Observer``
    (an object with ``on_event(event)`` and optionally ``close(status)``); it runs on the
    observer thread, never in the training loop (docs/observers.md). ``extra`` names the
    pip extra its code needs and ``needs`` the modules that extra provides: they are
    checked, without importing them, before a run writes anything.
    """

    extra: str = ""
    needs: tuple[str, ...] = ()
    kind: ClassVar[str] = "observer"


KINDS: dict[str, type[Component]] = {
    "model": ModelSource,
    "dataset": DatasetSource,
    "layers": LayerMap,
    "attack": Attack,
    "defense": Defense,
    "executor": ExecutorSource,
    "observer": ObserverSource,
}
# CLI words (plural) → kind
KIND_WORDS = {"models": "model", "datasets": "dataset", "layers": "layers", "attacks": "attack", "defenses": "defense",
              "executors": "executor", "observers": "observer"}
