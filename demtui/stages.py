"""The stages after prepare, each a plain function of the shared RunState.

baseline → attack → analyse → defend → evaluate → secondary. Each returns the dict
saved under ``results.json`` → ``stages.<name>``; anything a later stage needs from an
earlier one is reloadable from that dict and ``artifacts/``, which is what makes
``--resume`` work.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from demtui import boundary
from demtui.blame import blame, plugin_error
from demtui.context import RunContext
from demtui.contracts import AttackData, DefenseData, DefenseResult
from demtui.errors import RunError
from demtui.evaluation import attack_metrics, entropy_analysis, predict_under, random_sign_noise
from demtui.perturbation import Perturbation, load_perturbation
from demtui.prepare import Prepared
from demtui.registry import Registry
from demtui.spec import RunSpec
from demtui.store import RunStore

STAGES = ("baseline", "attack", "analyse", "defend", "evaluate", "secondary", "card")


@dataclass
class RunState:
    spec: RunSpec
    registry: Registry
    ctx: RunContext
    store: RunStore
    prep: Prepared
    _uaps: dict[str, Perturbation] = field(default_factory=dict)
    _defended: nn.Module | None = None
    _clean: dict[int, torch.Tensor] = field(default_factory=dict)  # id(model) → clean predictions

    @property
    def keys(self) -> list[str]:
        """One key per UAP: the target index, or 'untargeted'."""
        return [str(t) for t in self.prep.targets] or ["untargeted"]

    @staticmethod
    def target_of(key: str) -> int | None:
        return None if key == "untargeted" else int(key)

    def uaps(self, stage: str = "attack") -> dict[str, Perturbation]:
        if stage == "attack" and self._uaps:
            return self._uaps
        saved = self.store.stage(stage)
        if saved is None:
            raise RunError(f"Stage '{stage}' has not finished, so its UAPs are not available; redo it with the same command plus --rerun {stage}.")
        out = {k: load_perturbation(self.store.root / v["path"]).to(self.ctx.device) for k, v in saved["targets"].items()}
        if stage == "attack":
            self._uaps = out
        return out

    def defended(self) -> nn.Module:
        if self._defended is None:
            self._defended = load_defended(self)
        return self._defended

    def clean_pred(self, model: nn.Module) -> torch.Tensor:
        """Clean predictions on the evaluation set, computed once per model (stages never change a model in place)."""
        if id(model) not in self._clean:
            self._clean[id(model)] = predict_under(model, self.prep.x_eval, [None], batch_size=self.spec.run["batch_size"],
                                                   ctx=self.ctx)[0]
        return self._clean[id(model)]


def baseline(state: RunState) -> dict[str, Any]:
    pred = state.clean_pred(state.prep.built.module)
    cacc = float((pred == state.prep.y_eval.cpu()).float().mean())
    state.ctx.log(f"Clean accuracy of the original model: {cacc:.3f}")
    return {"cacc": cacc, "eval_samples": int(state.prep.x_eval.shape[0]), "classes": list(state.prep.classes),
            "layer": state.prep.layer, "layers": dict(state.prep.layers), **state.prep.info}


def _craft(state: RunState, model: nn.Module, stage: str) -> dict[str, Any]:
    """Craft one UAP per key against ``model``; saves each as soon as it is done."""
    spec, ctx, prep = state.spec, state.ctx, state.prep
    component = state.registry.get("attack", spec.attack.name)
    generate = component.load()
    data = AttackData(x=prep.x_attack, y=prep.y_attack, num_classes=len(prep.classes), layer=prep.layer)
    done = state.store.partial(stage)
    clean = state.clean_pred(model)
    for i, key in enumerate(state.keys):
        if key in done:
            continue
        ctx.log(f"{stage}: crafting {spec.attack.name} UAP for {_label(state, key)} ({i + 1}/{len(state.keys)})")
        pert, budget = boundary.craft(component, generate, model, data, state.target_of(key),
                                      spec.attack.params, ctx, _label(state, key))
        rel = f"artifacts/uap_{stage}_{key}.safetensors"
        with blame(component, "saving the perturbation it returned"):
            pert.save(state.store.root / rel)
            _save_preview(pert, state.store.root / rel.replace(".safetensors", ".png"))
        adv = predict_under(model, prep.x_eval, [pert], batch_size=spec.run["batch_size"], ctx=ctx)[0]
        metrics = attack_metrics(clean, adv, prep.y_eval, state.target_of(key))
        entry = {"path": rel, "metrics": metrics, "linf": getattr(pert, "linf", lambda: None)(), "budget": budget}
        ctx.emit("result", phase=stage, target=key, metrics=metrics)
        ctx.emit("artifact", stage=stage, path=rel, kind="uap")
        state.store.save_partial(stage, key, entry)
    return {"targets": dict(done)}


def attack(state: RunState) -> dict[str, Any]:
    out = _craft(state, state.prep.built.module, "attack")
    if state.spec.run["noise_baseline"]:
        out["noise_kind"], out["noise"] = _noise_baseline(state, out["targets"])
    return out


def _noise_baseline(state: RunState, crafted: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """SR of a random perturbation of the attack's own threat model: the floor a UAP must beat.

    The crafted UAP supplies its random counterpart (``Perturbation.random_like``): ±ε sign
    noise for L∞ attacks, a random-colour patch at the same place for patch attacks. Kinds
    without one fall back to ±ε sign noise at the attack's ``eps``.
    """
    gen = state.ctx.generator(offset=7)
    first = next(iter(crafted.values()), None)
    noise = load_perturbation(state.store.root / first["path"]).random_like(gen) if first else None
    if noise is None:
        eps = float(state.spec.attack.params.get("eps", 10 / 255))
        noise = random_sign_noise((1, *state.prep.x_eval.shape[1:]), eps, gen)
    model = state.prep.built.module
    clean = state.clean_pred(model)
    adv = predict_under(model, state.prep.x_eval, [noise], batch_size=state.spec.run["batch_size"], ctx=state.ctx)[0]
    return noise.kind, {key: attack_metrics(clean, adv, state.prep.y_eval, state.target_of(key))
                        for key in state.keys}


def analyse(state: RunState, phase: str = "before", model: nn.Module | None = None) -> dict[str, Any]:
    prep = state.prep
    layers = dict(prep.layers)
    if prep.layer not in layers.values():
        layers["selected"] = prep.layer
    repair_role = next((r for r, p in layers.items() if p == prep.layer), None)
    if model is not None:
        layers = remap_layers(model, layers)
    n = min(512, prep.x_eval.shape[0])
    summary = entropy_analysis(model or prep.built.module, prep.x_eval[:n], layers, state.uaps(),
                               phase=phase, bins=state.spec.run["bins"], batch_size=state.spec.run["batch_size"],
                               ctx=state.ctx)
    return {"layers": summary, "repair_role": repair_role,
            "repair_gap": summary[repair_role]["gap"] if repair_role in summary else None}


def remap_layers(model: nn.Module, layers: dict[str, str]) -> dict[str, str]:
    """Follow layer paths into a wrapping defense: ``conv1`` becomes ``model.conv1`` when wrapped.

    A path kept as is when it exists; otherwise the unique module path ending in ``.path``.
    Roles that cannot be found (a defense that rebuilt the network) are left out.
    """
    names = dict(model.named_modules())
    out = {}
    for role, path in layers.items():
        if path in names:
            out[role] = path
            continue
        hits = [n for n in names if n.endswith("." + path)]
        if len(hits) == 1:
            out[role] = hits[0]
    return out


def defend(state: RunState) -> dict[str, Any]:
    spec, ctx, prep = state.spec, state.ctx, state.prep
    assert spec.defense is not None
    component = state.registry.get("defense", spec.defense.name)
    apply = component.load()
    params = dict(spec.defense.params)
    for note in spec.notes:  # e.g. a defender training at a weaker budget than the attack
        ctx.log(note, level="warning")
    n = boundary.subset_size(component, params, len(prep.splits.train))  # declared subset params only
    from demtui.data import place, take_subset
    from demtui.prepare import spill_dir

    stream = bool(n) and params.get("subset_mode") == "stream"
    if stream:  # the defense draws n fresh images per epoch from the whole training split (the authors' loader)
        x, y = take_subset(prep.splits.train, len(prep.splits.train), seed=spec.run["seed"] + 41,
                           hold_bytes=ctx.hold_bytes, spill_dir=spill_dir())
    elif n:
        x, y = take_subset(prep.splits.train, n, seed=spec.run["seed"] + 41, hold_bytes=ctx.hold_bytes,
                           spill_dir=spill_dir())
    else:  # the defense declares no subset parameters: no images, never a hidden default share
        x, y = boundary.empty_subset(prep.x_eval, ctx.device)
    layer_path = boundary.defense_layer(component, params, prep.layers, prep.layer)
    x, y = place(x, ctx.device, ctx.hold_bytes), y.to(ctx.device)  # over the budget: stays in its mapped file
    uaps = boundary.known_uaps(state, component, x, y, layer_path) if component.known_uaps else []
    data = DefenseData(x=x, y=y, num_classes=len(prep.classes), layer=layer_path, targets=list(prep.targets), uaps=uaps)
    with blame(component, "applying the defense", hint="" if n else boundary.NO_SUBSET_HINT):
        result = apply(copy.deepcopy(prep.built.module), data, params, ctx)
    if not isinstance(result, DefenseResult):
        raise plugin_error(component, "applying the defense", TypeError(f"it returned {type(result).__name__}"),
                           hint="return a demtui.api.DefenseResult(model=..., history=..., wrapper=...)")
    result.model = result.model.to(ctx.device)  # a plugin's added modules may have been built on the CPU
    boundary.check_defended(component, result.model, prep.x_attack[:4].to(ctx.device).float() / 255, len(prep.classes))
    from demtui.plugins.models.builders import save_checkpoint

    save_checkpoint(result.model, state.store.root / "artifacts" / "defended.safetensors")
    ctx.emit("artifact", stage="defend", path="artifacts/defended.safetensors", kind="model")
    state._defended = result.model.to(ctx.device).eval()  # a plugin's added modules may have been built on the CPU
    return {"subset": int(n), "subset_mode": "stream" if stream else "fixed", "layer": layer_path, "wrapper": result.wrapper, "known_uaps": len(uaps),
            "history": _jsonable(result.history), "path": "artifacts/defended.safetensors"}


def load_defended(state: RunState) -> nn.Module:
    saved = state.store.stage("defend")
    if saved is None:
        raise RunError("The defend stage has not finished; redo it with the same command plus --rerun defend.")
    if saved.get("wrapper"):
        component = state.registry.get("defense", state.spec.defense.name)  # type: ignore[union-attr]
        rebuild = component.load_rebuild()
        with blame(component, "rebuilding its saved wrapper"):
            model = rebuild(copy.deepcopy(state.prep.built.module), saved["wrapper"])
    else:
        model = copy.deepcopy(state.prep.built.module)
    from demtui.plugins.models.builders import load_checkpoint

    load_checkpoint(model, state.store.root / saved["path"])
    return model.to(state.ctx.device).eval()


def evaluate(state: RunState) -> dict[str, Any]:
    model = state.defended()
    clean = state.clean_pred(model)
    y = state.prep.y_eval.cpu()
    cacc = float((clean == y).float().mean())
    uaps = state.uaps()
    preds = predict_under(model, state.prep.x_eval, list(uaps.values()), batch_size=state.spec.run["batch_size"], ctx=state.ctx)
    targets = {}
    for (key, _), adv in zip(uaps.items(), preds):
        targets[key] = attack_metrics(clean, adv, y, state.target_of(key))
        state.ctx.emit("result", phase="evaluate", target=key, metrics=targets[key])
    entropy = analyse(state, phase="after", model=model)
    return {"cacc": cacc, "targets": targets, "entropy": entropy}


def secondary(state: RunState) -> dict[str, Any]:
    return _craft(state, state.defended(), "secondary")


def card(state: RunState) -> dict[str, Any]:
    """The robustness report card (demtui/card.py): five attackers against the defended model."""
    from demtui import card as C

    spec, ctx, prep = state.spec, state.ctx, state.prep
    model = state.defended()
    clean = state.clean_pred(model)
    y = prep.y_eval.cpu()
    metric = "sr" if spec.run["mode"] == "targeted" else "fooling_rate"
    reuse = C.reused_part(spec.attack.name, spec.attack.params)
    parts: dict[str, dict[str, Any]] = {}
    for part in C.parts_of(spec.run.get("card")):
        if part == "tested":
            targets = dict(state.store.stage("evaluate")["targets"])
            parts[part] = {"attack": spec.attack.name, "source": "evaluate stage (UAPs crafted on the original model)"}
        elif part == "noise":
            first = next(iter(state.uaps().values()), None)
            noise = first.random_like(ctx.generator(offset=7)) if first is not None else None
            if noise is None:
                noise = random_sign_noise((1, *prep.x_eval.shape[1:]), float(spec.attack.params.get("eps", 10 / 255)),
                                          ctx.generator(offset=7))
            adv = predict_under(model, prep.x_eval, [noise], batch_size=spec.run["batch_size"], ctx=ctx)[0]
            targets = {key: attack_metrics(clean, adv, y, state.target_of(key)) for key in state.keys}
            parts[part] = {"attack": f"random {noise.kind}", "source": "computed on the defended model"}
        elif part == reuse and state.store.stage("secondary") is not None:
            targets = {k: v["metrics"] for k, v in state.store.stage("secondary")["targets"].items()}
            parts[part] = {"attack": spec.attack.name, "source": "secondary stage"}
        elif part == "adaptive" and remap_layers(model, {"r": prep.layer}).get("r") is None:
            ctx.log(f"card: adaptive part skipped, the defended model has no layer '{prep.layer}' to tap",
                    level="warning")
            parts[part] = {"attack": C.PART_ATTACKS[part], "source": "skipped: entropy layer not found", "sr": None,
                           "targets": {}}
            continue
        else:
            name = C.PART_ATTACKS[part]
            params = C.part_params(part, spec.attack.name, spec.attack.params, state.registry)
            targets = _card_attack(state, model, clean, name, params, part)
            parts[part] = {"attack": name, "source": "crafted on the defended model",
                           "params": {k: v for k, v in params.items() if k in ("eps", "iterations", "epochs", "rho")}}
        parts[part]["targets"] = targets
        parts[part]["sr"] = C.mean([m.get(metric) for m in targets.values()])
        ctx.log(f"card: {part} ({parts[part]['attack']}) {metric} {parts[part]['sr']}")
    worst, worst_sr = C.worst_of(parts)
    return {"parts": parts, "worst": worst, "worst_sr": worst_sr, "metric": metric}


def _card_attack(state: RunState, model: nn.Module, clean: torch.Tensor, name: str, params: dict[str, Any],
                 part: str) -> dict[str, Any]:
    """One card part: the attack crafted on the defended model per key, measured on the evaluation set."""
    prep, ctx = state.prep, state.ctx
    component = state.registry.get("attack", name)
    generate = component.load()
    # a wrapping defense moves the entropy layer (gap → model.gap); the adaptive attack taps it there
    layer = remap_layers(model, {"repair": prep.layer}).get("repair", prep.layer)
    data = AttackData(x=prep.x_attack, y=prep.y_attack, num_classes=len(prep.classes), layer=layer)
    out = {}
    for key in state.keys:
        ctx.log(f"card: crafting {name} for {_label(state, key)} ({part})")
        pert, _ = boundary.craft(component, generate, model, data, state.target_of(key), params, ctx,
                                 _label(state, key))
        adv = predict_under(model, prep.x_eval, [pert], batch_size=state.spec.run["batch_size"], ctx=ctx)[0]
        out[key] = attack_metrics(clean, adv, prep.y_eval, state.target_of(key))
    return out


def _label(state: RunState, key: str) -> str:
    t = state.target_of(key)
    return "non-targeted" if t is None else f"target {t} ({state.prep.classes[t]})"


def _save_preview(pert: Perturbation, path) -> None:
    try:
        from PIL import Image

        img = pert.preview().permute(1, 2, 0).numpy()
        if img.shape[2] == 1:
            img = img[:, :, 0]
        scale = max(1, 128 // img.shape[0])
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        Image.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale), Image.NEAREST).save(tmp, format="PNG")
        os.replace(tmp, path)
    except NotImplementedError:
        pass


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
