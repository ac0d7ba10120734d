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
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from demtui.errors import PluginError
from demtui.params import ParamSchema

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
ROLES = ("shallow1", "shallow2", "middle1", "middle2", "deep1", "deep2")


@dataclass(frozen=True)
class Component:
    """Fields every component shares; validated when the record is made."""

    name: str
    summary: str
    entry: str = ""
    params: ParamSchema = field(default_factory=ParamSchema)
    help: str = ""
    kind: ClassVar[str] = "component"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PluginError(
                f"{self.kind} name {self.name!r} is invalid; use lowercase letters, digits, '-', '_' or '.'."
            )
        if not isinstance(self.summary, str) or not self.summary.strip() or "\n" in self.summary:
            raise PluginError(f"{self.kind} '{self.name}' needs a one-line summary.")
        if not isinstance(self.params, ParamSchema):
            raise PluginError(
                f"{self.kind} '{self.name}' must declare params with demtui.params.schema(...), "
                f"not {type(self.params).__name__}."
            )
        if self.entry and not _ENTRY.match(self.entry):
            raise PluginError(
                f"{self.kind} '{self.name}' has entry {self.entry!r}; write it as 'package.module:callable'."
            )

    def load(self) -> Any:
        """Import and return the entry callable (the only place heavy code is imported)."""
        module_name, _, attr = self.entry.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind} '{self.name}' cannot load its code {self.entry!r} ({exc}); "
                "reinstall the plugin that provides it."
            ) from exc
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

    def __post_init__(self) -> None:
        super().__post_init__()
        roles = dict(self.layers)
        if self.repair not in roles:
            raise PluginError(
                f"layer map '{self.name}' names repair role '{self.repair}' but defines only "
                f"{', '.join(roles) or 'no roles'}."
            )

    def applies_to(self, model_ref: str) -> bool:
        return any(fnmatch.fnmatch(model_ref.lower(), pat.lower()) for pat in self.matches)

    def as_dict(self) -> dict[str, str]:
        return dict(self.layers)


@dataclass(frozen=True)
class Attack(Component):
    """Crafts a universal perturbation; says which threat modes it supports."""

    targeted: bool = True
    untargeted: bool = False
    threat: Literal["linf", "patch", "generator"] = "linf"
    kind: ClassVar[str] = "attack"


@dataclass(frozen=True)
class Defense(Component):
    """Returns a defended model; ``changes`` says how (so tables can say it too)."""

    changes: Literal["weights", "wrapper", "purifier"] = "weights"
    kind: ClassVar[str] = "defense"


@dataclass(frozen=True)
class ExecutorSource(Component):
    """Where runs execute (local processes, Ray, SLURM, a company scheduler).

    The entry is ``make(params: dict, ctx: demtui.executors.ExecutorContext) -> Executor``;
    ``extra`` names the pip extra its code needs, for the install hint.
    """

    extra: str = ""
    kind: ClassVar[str] = "executor"


KINDS: dict[str, type[Component]] = {
    "model": ModelSource,
    "dataset": DatasetSource,
    "layers": LayerMap,
    "attack": Attack,
    "defense": Defense,
    "executor": ExecutorSource,
}
# CLI words (plural) → kind
KIND_WORDS = {"models": "model", "datasets": "dataset", "layers": "layers", "attacks": "attack", "defenses": "defense",
              "executors": "executor"}
