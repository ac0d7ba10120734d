"""DensePure (Xiao et al., ICLR 2023): diffusion purification and a majority vote.

An input x ∈ [0, 1] is mapped to the diffusion model's [−1, 1] space, noised to the
timestep t* whose noise level matches σ (√((1−ᾱ_t)/ᾱ_t) ≈ 2σ, since [0, 1] → [−1, 1]
doubles scales): x_t* = √ᾱ·x' + √(1−ᾱ)·ε. The reverse process then runs from t* to 0 in
``reverse_steps`` strided DDPM steps (diffusers' ``DDPMScheduler`` with custom
timesteps), ``runs`` times with different noise; the classifier labels each purified
copy and the majority wins.

The wrapper's output is ``votes + 0.5·mean softmax``: its argmax is the majority vote
(ties broken by mean confidence), and it stays differentiable through the softmax
term, so an attack crafted on the defended model (the secondary stage) gets gradients
through the purification. Noise comes from a generator seeded per call, so the
purifier is a deterministic function (reproducible evaluations, exact reloads).
σ = 0 bypasses purification and returns the classifier's own logits.

The diffusion model is either a diffusers checkpoint (``UNet2DModel`` directory or hub
id, for users online) or, offline, a small UNet trained on the repair subset itself;
training samples timesteps up to 2·t* only, the part of the chain purification uses.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from demtui.errors import ModelError, ParamError


def noise_timestep(alphas_cumprod: torch.Tensor, level: float) -> int:
    """The timestep t whose noise-to-signal ratio √((1−ᾱ_t)/ᾱ_t) is closest to ``level``."""
    ratio = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
    return int((ratio - level).abs().argmin())


def reverse_timesteps(t_star: int, steps: int) -> list[int]:
    """``steps`` strided timesteps from t* down to 0 (descending, unique)."""
    raw = torch.linspace(t_star, 0, max(1, steps)).round().long().tolist()
    return sorted(set(raw), reverse=True)


def tiny_unet(image_size: int, channels: int, width: int = 32) -> nn.Module:
    """A CPU-sized diffusers UNet: three resolution levels, no attention."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=image_size, in_channels=channels, out_channels=channels,
                       block_out_channels=(width, 2 * width, 2 * width), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
                       norm_num_groups=math.gcd(width, 8), add_attention=False)


class Purifier(nn.Module):
    """The original classifier behind diffusion purification (``model``, ``unet`` submodules)."""

    def __init__(self, model: nn.Module, unet: nn.Module, scheduler_config: dict[str, Any], *, sigma: float,
                 runs: int, reverse_steps: int, seed: int = 0) -> None:
        super().__init__()
        from diffusers import DDPMScheduler

        if sigma < 0:
            raise ParamError(f"Parameter 'sigma' must be ≥ 0 (0 turns purification off), got {sigma:g}.")
        self.model, self.unet = model, unet
        self.scheduler = DDPMScheduler.from_config(scheduler_config)
        self.sigma, self.runs, self.reverse_steps, self.seed = float(sigma), int(runs), int(reverse_steps), int(seed)
        self.t_star = noise_timestep(self.scheduler.alphas_cumprod, 2 * self.sigma) if sigma > 0 else 0
        self.timesteps = reverse_timesteps(self.t_star, self.reverse_steps)

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        """``runs`` purified copies of float images ``x`` in [0, 1]: (runs·N, C, H, W), run-major."""
        g = torch.Generator(device=x.device).manual_seed(self.seed)
        x0 = x.repeat(self.runs, 1, 1, 1) * 2 - 1
        abar = self.scheduler.alphas_cumprod[self.t_star].to(x.device, torch.float32)
        noise = torch.randn(x0.shape, generator=g, device=x.device, dtype=x0.dtype)
        sample = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        self.scheduler.set_timesteps(timesteps=self.timesteps)
        for t in self.timesteps:
            steps = torch.full((sample.shape[0],), t, device=x.device, dtype=torch.long)
            eps = self.unet(sample, steps).sample
            sample = self.scheduler.step(eps, t, sample, generator=g).prev_sample.to(x0.dtype)
        return ((sample + 1) / 2).clamp(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0 or self.runs == 0:
            return self.model(x)
        purified = self.purify(x)
        n = x.shape[0]
        votes: torch.Tensor | None = None
        probs: torch.Tensor | None = None
        for r in range(self.runs):  # one run at a time: layer hooks see N-sized batches
            logits = self.model(purified[r * n:(r + 1) * n]).float()
            p = F.softmax(logits, dim=1)
            v = F.one_hot(logits.argmax(1), logits.shape[1]).float()
            votes, probs = (v, p) if votes is None else (votes + v, probs + p)  # type: ignore[operator]
        assert votes is not None and probs is not None
        return votes + 0.5 * probs / self.runs


def _unet_config(unet: nn.Module) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(unet.config).items() if not k.startswith("_")}


def wrapper_spec(purifier: Purifier, source: str) -> dict[str, Any]:
    sched = {k: v for k, v in dict(purifier.scheduler.config).items() if not k.startswith("_")}
    return {"kind": "densepure", "source": source, "unet_config": _unet_config(purifier.unet),
            "scheduler_config": sched, "sigma": purifier.sigma, "runs": purifier.runs,
            "reverse_steps": purifier.reverse_steps, "seed": purifier.seed, "t_star": purifier.t_star}


def rebuild_purifier(model: nn.Module, wrapper: dict[str, Any]) -> Purifier:
    from diffusers import UNet2DModel

    unet = UNet2DModel.from_config(wrapper["unet_config"])
    return Purifier(model, unet, wrapper["scheduler_config"], sigma=wrapper["sigma"], runs=wrapper["runs"],
                    reverse_steps=wrapper["reverse_steps"], seed=wrapper.get("seed", 0)).eval()


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_checkpoint_unet(ref: str, image_size: int, channels: int) -> tuple[nn.Module, dict[str, Any]]:
    """A pretrained diffusers UNet2DModel (+ its DDPM schedule) from a local directory or a hub id."""
    from diffusers import DDPMScheduler, UNet2DModel

    how = ("pass a local diffusers directory (config.json + diffusion_pytorch_model.safetensors, e.g. saved with "
           "UNet2DModel.save_pretrained, or a pipeline folder with unet/), a hub id such as google/ddpm-cifar10-32 "
           "while online, or leave defense.checkpoint empty and set defense.train_steps to train a small one offline")
    path = Path(ref).expanduser()
    if not path.exists() and not _HUB_ID.match(ref):
        raise ModelError(f"Diffusion checkpoint '{ref}' does not exist; {how}.")
    unet = None
    errors = []
    subfolders = ["unet", None] if (path / "unet" / "config.json").exists() or not path.exists() else [None]
    for sub in subfolders:
        try:
            unet = UNet2DModel.from_pretrained(str(path) if path.exists() else ref, subfolder=sub)
            break
        except Exception as exc:  # noqa: BLE001 - offline, missing files, wrong class: one sentence
            errors.append(type(exc).__name__)
    if unet is None:
        raise ModelError(f"Diffusion checkpoint '{ref}' could not be loaded ({', '.join(errors)}); {how}.")
    size = unet.config.sample_size
    size = size if isinstance(size, int) else tuple(size)[0]
    if unet.config.in_channels != channels or size != image_size:
        raise ModelError(f"Diffusion checkpoint '{ref}' is for {unet.config.in_channels}×{size}×{size} images but "
                         f"the dataset has {channels}×{image_size}×{image_size}; use a matching checkpoint.")
    scheduler = None
    for sub in ("scheduler", None):
        try:
            scheduler = DDPMScheduler.from_pretrained(str(path) if path.exists() else ref, subfolder=sub)
            break
        except Exception:  # noqa: BLE001 - no scheduler saved: the standard DDPM schedule
            continue
    config = dict((scheduler or DDPMScheduler()).config)
    return unet, {k: v for k, v in config.items() if not k.startswith("_")}


def train_unet(
    x: torch.Tensor,
    *,
    steps: int,
    t_max: int,
    width: int = 32,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[nn.Module, dict[str, Any], list[dict[str, Any]]]:
    """Train a tiny ε-prediction UNet on uint8 images ``x`` for t ∈ [0, t_max]; (unet, scheduler config, log)."""
    from diffusers import DDPMScheduler

    device = torch.device(device)
    torch.manual_seed(seed + 37)
    g = torch.Generator().manual_seed(seed + 37)
    unet = tiny_unet(int(x.shape[-1]), int(x.shape[1]), width).to(device).train()
    scheduler = DDPMScheduler()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    t_hi = min(max(t_max, 1), scheduler.config.num_train_timesteps - 1)
    log: list[dict[str, Any]] = []
    chunk = max(1, steps // 10)
    running, t0 = 0.0, time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=g)
        x0 = x[idx.to(x.device)].to(device).float() / 127.5 - 1
        flip = torch.rand(len(idx), generator=g) < 0.5
        x0 = torch.where(flip.view(-1, 1, 1, 1).to(device), x0.flip(-1), x0)
        t = torch.randint(0, t_hi + 1, (len(idx),), generator=g).to(device)
        noise = torch.randn(x0.shape, generator=g).to(device)
        pred = unet(scheduler.add_noise(x0, noise, t), t).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += float(loss.detach())
        if (step + 1) % chunk == 0 or step + 1 == steps:
            count = (step % chunk) + 1
            log.append({"stage": "diffusion", "epoch": len(log) + 1, "step": step + 1, "loss": round(running / count, 5),
                        "seconds": round(time.perf_counter() - t0, 2)})
            running, t0 = 0.0, time.perf_counter()
        if progress:
            progress(step + 1, steps, {"stage": "diffusion", "loss": float(loss.detach())})
        if should_stop and should_stop():
            break
    unet.eval()
    config = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    return unet, config, log


@torch.no_grad()
def measure_overhead(purifier: Purifier, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Seconds per image with and without purification, and accuracy of both, on float ``x``."""
    def timed(fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, float]:
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        out = fn(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        return out.argmax(1), (time.perf_counter() - t0) / len(x)

    purifier.eval()
    purifier.model(x[:2])  # warm-up
    plain, s_plain = timed(purifier.model)
    pure, s_pure = timed(purifier)
    return {"images": int(len(x)), "seconds_per_image_plain": round(s_plain, 6),
            "seconds_per_image_purified": round(s_pure, 6),
            "overhead_x": round(s_pure / s_plain, 1) if s_plain > 0 else None,
            "acc_plain": round(float((plain == y).float().mean()), 4),
            "acc_purified": round(float((pure == y).float().mean()), 4)}
