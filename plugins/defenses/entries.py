"""Adapters from the defense contract to the training modules (heavy: imports torch)."""

from __future__ import annotations

from typing import Any

from torch import nn

from demtui.contracts import DefenseData, DefenseResult
from demtui.coupling import RATIO, coupled_value, with_recipe


def _budget(params: dict[str, Any], key: str = "eps") -> float:
    """The training budget: explicit, or filled by the engine from the attack's ε (empty here only when
    a caller skips spec resolution, e.g. demtui.testing: then eps_ratio × the paper's 10/255)."""
    return coupled_value(params, key, None)


def _stream_n(params: dict[str, Any], pool: int) -> int:
    """Images per epoch in stream mode: the size the fixed subset would have (subset_size or fraction × pool)."""
    if params.get("subset_size"):
        return min(int(params["subset_size"]), pool)
    return max(1, round(float(params.get("subset_fraction") or 0.05) * pool))


def democratic(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """Democratic Training (Alg. 1 with the Alg. 2 sample generator) on the clean subset."""
    from demtui.plugins.defenses.democratic import democratic_training

    params = with_recipe("democratic", params)  # a no-op after spec resolution; for direct callers
    knobs = {k: v for k, v in params.items()
             if k not in ("layer", "subset_fraction", "subset_size", "subset_mode", "recipe", RATIO)}
    knobs["eps"] = _budget(params)
    if params.get("subset_mode") == "stream":  # data.x is the whole training split; draw n fresh images per epoch
        knobs["epoch_samples"] = _stream_n(params, len(data.x))
    with ctx.autocast():
        history = democratic_training(model, data.x, data.y, layer_name=data.layer, **knobs, seed=ctx.seed,
                                      device=ctx.device, progress=ctx.progress, should_stop=ctx.should_stop)
    ctx.check_cancelled()
    return DefenseResult(model=model.eval(), history=history)


# --- the baselines of Tables 4 and 5 -------------------------------------------------

#: Keys of the shared fine-tuning loop (plugins/defenses/finetune.py).
_LOOP = ("epochs", "lr", "momentum", "weight_decay", "batch_size", "bn_mode", "refine_epochs", "refine_lr",
         "schedule", "collapse_check")


def _loop(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    knobs = {k: params[k] for k in _LOOP if k in params}
    return {**knobs, "device": ctx.device, "progress": ctx.progress, "should_stop": ctx.should_stop}


def _check_classes(classes: list[int], num_classes: int, param: str) -> list[int]:
    from demtui.errors import SpecError

    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise SpecError(f"Class {bad[0]} in defense.{param} does not exist; the dataset has classes 0–{num_classes - 1}.")
    return classes


def _finish(model: nn.Module, history: dict[str, Any], ctx: Any, wrapper: dict[str, Any] | None = None) -> DefenseResult:
    ctx.check_cancelled()
    return DefenseResult(model=model.eval(), history=history, wrapper=wrapper)


def pgd_at(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """Non-targeted on-the-fly PGD adversarial training (Table 4, 'non-targeted AT')."""
    from demtui.plugins.defenses.adversarial import adversarial_training

    with ctx.autocast():
        history = adversarial_training(model, data.x, data.y, targets=(), eps=_budget(params), steps=params["steps"],
                                       step_size=params["step_size"], random_start=params["random_start"],
                                       alpha=params["alpha"], seed=ctx.seed, **_loop(params, ctx))
    return _finish(model, history, ctx)


def pgd_at_targeted(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """PGD adversarial training toward target classes: defense.target, else the run's targets."""
    from demtui.errors import SpecError
    from demtui.plugins.defenses.adversarial import adversarial_training

    targets = [params["target"]] if params.get("target") is not None else list(data.targets)
    if not targets:
        raise SpecError("pgd-at-targeted needs a target class; set defense.target=N or run with --targets.")
    targets = _check_classes(targets, data.num_classes, "target")
    with ctx.autocast():
        history = adversarial_training(model, data.x, data.y, targets=targets, eps=_budget(params), steps=params["steps"],
                                       step_size=params["step_size"], random_start=params["random_start"],
                                       alpha=params["alpha"], seed=ctx.seed, **_loop(params, ctx))
    return _finish(model, history, ctx)


def _known_uaps(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> Any:
    """DF-UAPs crafted on the repair subset against the original model — never the run's evaluation UAPs."""
    from demtui.plugins.defenses.adversarial import craft_known_uaps, uap_targets

    explicit = _check_classes(list(params.get("uap_targets") or []), data.num_classes, "uap_targets")
    targets = uap_targets(explicit, data.targets)
    count = len(targets) * params["uaps_per_target"]
    ctx.log(f"Crafting {count} known DF-UAP(s) on the repair subset (never the evaluation UAPs)")
    with ctx.autocast():
        return craft_known_uaps(model, data.x, data.y, targets, per_target=params["uaps_per_target"],
                                eps=_budget(params, "uap_eps"), iterations=params["iterations"], seed=ctx.seed,
                                device=ctx.device, progress=ctx.progress)


def uap_at(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """Fine-tuning with known UAPs added with probability p (Table 4, 'known UAPs')."""
    from demtui.plugins.defenses.adversarial import known_uap_training

    uaps = _known_uaps(model, data, params, ctx)
    with ctx.autocast():
        history = known_uap_training(model, data.x, data.y, uaps, p=params["p"], alpha=params["alpha"], seed=ctx.seed,
                                     **_loop(params, ctx))
    return _finish(model, history, ctx)


def trades(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """TRADES robust fine-tuning (Zhang et al. 2019)."""
    from demtui.plugins.defenses.trades import trades_training

    with ctx.autocast():
        history = trades_training(model, data.x, data.y, beta=params["beta"], eps=_budget(params), steps=params["steps"],
                                  step_size=params["step_size"], seed=ctx.seed, **_loop(params, ctx))
    return _finish(model, history, ctx)


def _feature_norm(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any, name: str,
                  dr: float, variant: str) -> DefenseResult:
    import time

    from demtui.plugins.defenses.finetune import probe as _probe
    from demtui.plugins.defenses.feature_norm import feature_norm_defense

    t0 = time.perf_counter()
    probe_x, probe_y = data.x[:512], data.y[:512]
    before = _probe(model, probe_x, probe_y, data.num_classes)
    wrapper, spec, clipped = feature_norm_defense(
        model, layers=params["layers"], clp=params["clp"], dr=dr, variant=variant, name=name,
        probe=probe_x[:256].float() / 255, recalibrate=data.x.to(ctx.device) if params["recalibrate_bn"] else None)
    history = {"defense": name, "layers": spec["layers"], "clp": params["clp"], "dr": dr, "variant": variant,
               "clipped_share": clipped, "bn_recalibrated": spec["bn_layers"], "probe_before": before,
               "probe_after": _probe(wrapper, probe_x, probe_y, data.num_classes),
               "seconds": round(time.perf_counter() - t0, 3), "epochs": []}
    ctx.log(f"{name}: norm guards after {', '.join(spec['layers'])}")
    return _finish(wrapper, history, ctx, spec)


def cfn(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """CFN: clip per-position feature norms after residual stages (Yu et al. 2021); no training."""
    return _feature_norm(model, data, params, ctx, "cfn", 1.0, "exp")


def fns(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """FNS: suppress feature norms above the threshold, exponential or Gaussian (Yu et al. 2023)."""
    return _feature_norm(model, data, params, ctx, "fns", params["dr"], params["variant"])


def _rebuild_feature_norm(model: nn.Module, wrapper: dict[str, Any]) -> nn.Module:
    from demtui.plugins.defenses.feature_norm import rebuild_feature_norm

    return rebuild_feature_norm(model, wrapper)


cfn.rebuild = _rebuild_feature_norm  # type: ignore[attr-defined]
fns.rebuild = _rebuild_feature_norm  # type: ignore[attr-defined]


def sfr(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """SFR: feature regeneration units on the most UAP-sensitive filters of an early layer (Borkar et al. 2020)."""
    from demtui.plugins.defenses.sfr import sfr_defense
    from demtui.plugins.defenses.wrapping import resolve_layers

    names = {n for n, _ in model.named_modules() if n}
    # The engine resolves a role (shallow1 …) into data.layer; a module path given directly is used as is.
    layer = params["layer"] if params.get("layer") in names else data.layer
    resolve_layers(model, [layer], "layer")
    uaps = _known_uaps(model, data, params, ctx)
    loop = {k: v for k, v in _loop(params, ctx).items() if k not in ("bn_mode", "refine_epochs", "refine_lr")}
    with ctx.autocast():
        wrapper, spec, history = sfr_defense(model, data.x, data.y, uaps, layer=layer, ratio=params["ratio"],
                                             hidden=params["hidden"], rank=params["rank"], p=params["p"],
                                             alpha=params["alpha"], seed=ctx.seed, **loop)
    return _finish(wrapper, history, ctx, spec)


def _rebuild_sfr(model: nn.Module, wrapper: dict[str, Any]) -> nn.Module:
    from demtui.plugins.defenses.sfr import rebuild_sfr

    return rebuild_sfr(model, wrapper)


sfr.rebuild = _rebuild_sfr  # type: ignore[attr-defined]


def densepure(model: nn.Module, data: DefenseData, params: dict[str, Any], ctx: Any) -> DefenseResult:
    """DensePure: diffusion purification, several reverse runs, majority vote (Xiao et al. 2023)."""
    import time

    from diffusers import DDPMScheduler

    from demtui.errors import ModelError, ParamError
    from demtui.plugins.defenses import densepure as dp

    sigma = float(params["sigma"])
    if sigma < 0:
        raise ParamError(f"Parameter 'sigma' must be ≥ 0 (0 turns purification off), got {sigma:g}.")
    t0 = time.perf_counter()
    channels, size = int(data.x.shape[1]), int(data.x.shape[-1])
    log: list[dict[str, Any]] = []
    if params["checkpoint"]:
        unet, scheduler_config = dp.load_checkpoint_unet(params["checkpoint"], size, channels)
        source = params["checkpoint"]
    elif params["train_steps"] > 0:
        t_star = dp.noise_timestep(DDPMScheduler().alphas_cumprod, 2 * sigma)
        source = "trained on the repair subset"
        if sigma > 0:
            ctx.log(f"densepure: training a small diffusion UNet for {params['train_steps']} steps (t ≤ {2 * t_star})")
            unet, scheduler_config, log = dp.train_unet(
                data.x, steps=params["train_steps"], t_max=max(2 * t_star, 10), width=params["unet_width"],
                lr=params["train_lr"], batch_size=params["batch_size"], seed=ctx.seed, device=ctx.device,
                progress=ctx.progress, should_stop=ctx.should_stop)
        else:  # σ = 0 never runs the UNet: keep an untrained one so the wrapper reloads
            unet = dp.tiny_unet(size, channels, params["unet_width"])
            scheduler_config = {k: v for k, v in DDPMScheduler().config.items() if not k.startswith("_")}
    else:
        raise ModelError("DensePure needs a diffusion model; set defense.checkpoint to a diffusers UNet directory "
                         "or hub id, or defense.train_steps > 0 to train a small one on the repair subset.")
    ctx.check_cancelled()
    purifier = dp.Purifier(model.eval(), unet.to(ctx.device).eval(), scheduler_config, sigma=sigma,
                           runs=params["runs"], reverse_steps=params["reverse_steps"], seed=ctx.seed).eval()
    n = min(len(data.x), params["overhead_images"])
    with ctx.autocast():
        inference = dp.measure_overhead(purifier, data.x[:n].float() / 255, data.y[:n])
    history = {"defense": "densepure", "source": source, "epochs": log, "sigma": sigma, "t_star": purifier.t_star,
               "timesteps": purifier.timesteps, "runs": purifier.runs, "inference": inference,
               "seconds": round(time.perf_counter() - t0, 2)}
    ctx.log(f"densepure: {inference['overhead_x']}× inference time per image with purification")
    return _finish(purifier, history, ctx, dp.wrapper_spec(purifier, source))


def _rebuild_densepure(model: nn.Module, wrapper: dict[str, Any]) -> nn.Module:
    from demtui.plugins.defenses.densepure import rebuild_purifier

    return rebuild_purifier(model, wrapper)


densepure.rebuild = _rebuild_densepure  # type: ignore[attr-defined]
