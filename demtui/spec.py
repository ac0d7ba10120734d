"""RunSpec: what a run does, from TOML, CLI flags or the TUI's form — one validator.

A spec has six sections. ``[run]``, ``[victim]`` are validated against schemas here;
``[model]``, ``[dataset]``, ``[attack]``, ``[defense]`` each name a component
(``name = "df-uap"``) and carry its params beside the name. Layering: the built-in
quickstart spec, then ``--spec FILE``, then flags; a section whose ``name`` changes is
replaced whole, so one model's params never leak into another's.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demtui.errors import SpecError, did_you_mean
from demtui.params import Param, ParamSchema, schema

if TYPE_CHECKING:
    from demtui.registry import Registry

RUN_PARAMS = schema(
    Param("seed", "int", 0, "Seed for data subsets, attacks and training.", min=0),
    Param("device", "str", "auto", "auto, cpu, cuda, cuda:N or mps."),
    Param("mode", "choice", "targeted", "Targeted UAPs (one per target) or one non-targeted UAP.",
          choices=("targeted", "untargeted")),
    Param("layer", "str", "", "Entropy layer: a role (shallow1 … deep2) or a module path; empty = the model's repair layer."),
    Param("eval_samples", "int", 1000, "Held-out test images used for every metric.", min=1),
    Param("attack_samples", "int", 1000, "Training images an attack may craft its UAP on.", min=1),
    Param("secondary", "bool", True, "After a defense, run the attack again against the defended model."),
    Param("noise_baseline", "bool", True, "Also measure a random perturbation of the attack's threat model "
          "(±ε sign noise; a random patch for patches)."),
    Param("card", "str", "full", "Robustness card after a defense: full, off, or a comma list of tested, fresh, "
          "adaptive, other, noise (demtui/card.py)."),
    Param("batch_size", "int", 256, "Evaluation batch size.", min=1),
    Param("bins", "int", 24, "Bins of the entropy histograms.", min=2, max=200),
    Param("threads", "int", 0, "CPU threads torch may use (0: auto, the cores free by load average on a CPU "
          "run unless OMP_NUM_THREADS or an executor's share says otherwise); results can differ in the last "
          "digits between thread counts.", min=0),
    Param("memory_budget", "float", 2.0, "GiB of images a run holds whole (on the device); larger sets are decoded "
          "once into a memory-mapped file and evaluation streams them (0: always).", min=0),
)
VICTIM_PARAMS = schema(
    Param("epochs", "int", 30, "Victim training epochs.", min=1),
    Param("lr", "float", 0.05, "Peak learning rate (SGD, one-cycle).", min=0, min_inclusive=False),
    Param("batch_size", "int", 128, "Training batch size.", min=1),
    Param("weight_decay", "float", 5e-4, "SGD weight decay.", min=0),
    Param("noise_eps", "float", 16 / 255, "Uniform sign-noise augmentation budget (0 = off).", min=0, max=1),
    Param("flip", "bool", True, "Random horizontal flips.", nullable=False),
    Param("samples", "int", None, "Training images to use (empty = the whole split).", min=1, nullable=True),
)
MODEL_COMMON = schema(
    Param("checkpoint", "str", None, "Local weights (.safetensors, or .pt loaded with weights_only).", nullable=True),
    Param("pretrained", "str", "false", "false, true (default weights) or a weights name; needs network once."),
    Param("train", "choice", "auto", "auto: train a victim when no checkpoint/pretrained weights (cached); "
          "always; never.", choices=("auto", "always", "never")),
)
SECTIONS = ("run", "model", "dataset", "victim", "attack", "defense", "observer")
COMPONENT_SECTIONS = {"model": "model", "dataset": "dataset", "attack": "attack", "defense": "defense"}


@dataclass
class Choice:
    """A chosen component and its validated params."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSpec:
    run: dict[str, Any]
    targets: list[int | str]
    model: Choice
    dataset: Choice
    victim: dict[str, Any]
    attack: Choice
    defense: Choice | None
    #: experiment-tracker observers (run.observers + [observer.NAME] tables); they never change results
    observers: list[Choice] = field(default_factory=list)
    #: One-line warnings found while resolving (e.g. a defender weaker than the attack).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run": {**self.run, "targets": list(self.targets)}}
        for key in ("model", "dataset", "attack", "defense"):
            choice = getattr(self, key)
            out[key] = {"name": "none"} if choice is None else {"name": choice.name, **_drop_none(choice.params)}
        out["victim"] = _drop_none(self.victim)
        out["run"] = _drop_none(out["run"])
        if self.observers:
            out["run"]["observers"] = [o.name for o in self.observers]
            out["observer"] = {o.name: _drop_none(o.params) for o in self.observers}
        return out

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def quickstart_dict() -> dict[str, Any]:
    text = (resources.files("demtui") / "specs" / "quickstart.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def read_spec_file(path: str | Path) -> dict[str, Any]:
    path = Path(path).expanduser()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"Spec file {path} does not exist; check the --spec path.") from None
    except IsADirectoryError:
        raise SpecError(f"Spec file {path} is a directory; pass a .toml file to --spec.") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"Spec file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 TOML.") from None
    except OSError as exc:
        raise SpecError(f"Spec file {path} cannot be read ({exc.strerror or exc}); check its permissions.") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"Spec file {path} is not valid TOML ({exc}).") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Layer ``over`` on ``base``; a component section with a new name replaces the old."""
    out = copy.deepcopy(base)
    for section, values in over.items():
        if not isinstance(values, dict):
            raise SpecError(f"Spec section '{section}' must be a table, e.g. [{section}].")
        current = out.get(section, {})
        if section in COMPONENT_SECTIONS and "name" in values and values["name"] != current.get("name"):
            current = {}
        out[section] = {**current, **values}
    return out


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """``component.param=value`` strings (``--set attack.eps=8/255``) → a spec overlay."""
    over: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        section, dot, param = key.strip().partition(".")
        if not sep or not dot or not param:
            raise SpecError(f"--set {item!r} must look like section.param=value, e.g. attack.eps=8/255.")
        over.setdefault(section, {})[param] = value.strip()
    return over


def resolve(data: dict[str, Any], registry: "Registry") -> RunSpec:
    """Validate a layered spec dict against the registry; one sentence per problem."""
    for section in data:
        if section not in SECTIONS:
            raise SpecError(f"Unknown spec section '[{section}]'." + did_you_mean(section, SECTIONS)
                            + f" Sections are: {', '.join(SECTIONS)}.")
    run_values = dict(data.get("run", {}))
    targets = _targets(run_values.pop("targets", [0]))
    observers = _observers(run_values.pop("observers", []), data.get("observer", {}), registry)
    run = RUN_PARAMS.validate(run_values, owner="run")
    from demtui.card import parts_of

    parts_of(run.get("card"))  # a bad part name fails here, before anything runs
    if run["mode"] == "targeted" and not targets:
        raise SpecError("The target list is empty; give class indices or names, e.g. --targets 0,3,5, "
                        "or set run.mode=untargeted.")
    model = _choice(data, "model", registry, extra=MODEL_COMMON)
    dataset = _choice(data, "dataset", registry)
    attack = _choice(data, "attack", registry)
    defense_section = data.get("defense", {"name": "none"})
    defense = None if defense_section.get("name", "none") == "none" else _choice(data, "defense", registry)
    victim = VICTIM_PARAMS.validate(data.get("victim", {}), owner="victim")
    notes: list[str] = []
    if defense is not None:  # training budgets follow the attack's ε (demtui/coupling.py)
        from demtui.coupling import couple

        defense.params, notes = couple(attack.params, defense.params, defense.name)
    if run["mode"] == "untargeted" and not registry.get("attack", attack.name).untargeted:
        raise SpecError(f"Attack '{attack.name}' has no non-targeted mode; pick another attack or run.mode=targeted.")
    return RunSpec(run=run, targets=targets if run["mode"] == "targeted" else [], model=model,
                   dataset=dataset, victim=victim, attack=attack, defense=defense, observers=observers,
                   notes=notes)


def with_observers(data: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Add ``--observer`` names to a spec dict's run.observers (kept in order, no repeats)."""
    if not names:
        return data
    run = dict(data.get("run", {}))
    current = _names(run.get("observers", []))
    run["observers"] = current + [n for n in names if n not in current]
    return {**data, "run": run}


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"run.observers must be a list of observer names, e.g. [\"tensorboard\"], got {value!r}.")
    return [v.strip() for v in value]


def _observers(names: Any, tables: Any, registry: "Registry") -> list[Choice]:
    """Each enabled observer with its validated [observer.NAME] params (``--set observer.NAME.k=v`` works too)."""
    if not isinstance(tables, dict):
        raise SpecError("Spec section 'observer' must hold one table per observer, e.g. [observer.tensorboard].")
    by_name: dict[str, dict[str, Any]] = {}
    for key, value in sorted(tables.items(), key=lambda kv: "." in str(kv[0])):  # --set's dotted keys win
        name, dot, param = str(key).partition(".")
        if dot:  # from --set observer.NAME.param=value
            by_name.setdefault(name, {})[param] = value
        elif isinstance(value, dict):
            by_name.setdefault(name, {}).update(value)
        else:
            raise SpecError(f"[observer] entry '{key}' must be a table of that observer's params, e.g. "
                            f"[observer.{key}], or --set observer.NAME.param=value.")
    out = []
    for name in dict.fromkeys(_names(names)):
        source = registry.get("observer", name)
        out.append(Choice(name=name, params=source.params.validate(by_name.get(name, {}), owner=f"observer {name}")))
    return out


def _targets(value: Any) -> list[int | str]:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = [v for v in str(value).replace(" ", "").split(",") if v]
    if not isinstance(value, list):
        raise SpecError(f"run.targets must be a list of class indices or names, got {value!r}.")
    out: list[int | str] = []
    for v in value:
        text = str(v).strip()
        out.append(int(text) if text.lstrip("-").isdigit() else text)
    return out


def _choice(data: dict[str, Any], section: str, registry: "Registry", extra: ParamSchema | None = None) -> Choice:
    values = dict(data.get(section, {}))
    name = values.pop("name", None)
    if not name:
        raise SpecError(f"Spec section [{section}] needs a name, e.g. name = \"...\"; "
                        f"run 'demtui list {section}s' to see the choices.")
    name = str(name)
    if section == "model":
        source, _ = registry.model_source(name)
        params = ParamSchema(tuple(extra or ()) + tuple(source.params))
    else:
        params = registry.get(COMPONENT_SECTIONS[section], name).params
    return Choice(name=name, params=params.validate(values, owner=f"{section} {name}"))
