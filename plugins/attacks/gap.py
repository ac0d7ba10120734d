"""GAP: Generative Adversarial Perturbations (Poursaeed et al., CVPR 2018), universal mode.

A small ResNet-style generator G maps one *fixed* noise image z to a raw pattern; the
perturbation is that pattern rescaled to the L∞ budget, δ = ε·G(z)/‖G(z)‖∞ (GAP's
scaling step), so every δ it can produce sits exactly on the budget. G is trained with
Adam (lr 2e-4, β1 0.5) on the victim's loss: targeted, log CE(f(x+δ), t); non-targeted,
GAP's least-likely variant, log CE toward each image's least-likely clean class. The
log keeps gradients alive as CE shrinks. The result is an AdditivePerturbation (the
generator's output for z); the generator itself is not kept.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from demtui.errors import RunError
from demtui.plugins.attacks.common import Progress, Stop, as_float, eval_mode, predict, report, sample_batch, stopped


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.InstanceNorm2d(width, affine=True),
                                  nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1),
                                  nn.InstanceNorm2d(width, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """GAP's ResNet generator, shrunk: stem, one stride-2 down, residual blocks, one up, head.

    InstanceNorm rather than BatchNorm because universal mode feeds a batch of one.
    """

    def __init__(self, channels: int, width: int = 32, blocks: int = 3) -> None:
        super().__init__()
        w = int(width)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, w, 7, padding=3), nn.InstanceNorm2d(w, affine=True), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * w, affine=True), nn.ReLU(inplace=True),
        ]
        layers += [_Block(2 * w) for _ in range(blocks)]
        layers += [nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(w, affine=True), nn.ReLU(inplace=True), nn.Conv2d(w, channels, 7, padding=3)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z)
        return out[..., : z.shape[-2], : z.shape[-1]]  # odd sizes: the up-sampling may overshoot by one


def scale_to_budget(raw: torch.Tensor, eps: float) -> torch.Tensor:
    """δ = ε·raw/‖raw‖∞: GAP's fixed-norm scaling (L∞ = ε exactly unless raw is all zero)."""
    return raw * (eps / raw.abs().amax().clamp_min(1e-12))


def gap_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log CE toward ``labels`` (the target, or each image's least-likely class); minimised."""
    return torch.log(F.cross_entropy(logits.float(), labels).clamp_min(1e-12))


def craft_gap(
    model: nn.Module,
    x: torch.Tensor,
    target: int | None,
    *,
    eps: float,
    train_steps: int = 500,
    lr: float = 2e-4,
    beta1: float = 0.5,
    width: int = 32,
    blocks: int = 3,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    should_stop: Stop | None = None,
) -> torch.Tensor:
    """Train a generator on uint8 images ``x``; return δ (1×C×H×W, float32 on CPU, ‖δ‖∞ ≤ eps).

    Raises RunError if training diverges (a non-finite loss or generator output).
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x = x.to(device)
    n, c = x.shape[0], x.shape[1]
    with torch.random.fork_rng(devices=[]):  # the generator's initial weights come from the seed
        torch.manual_seed(seed)
        gen = Generator(c, width, blocks).to(device)
    z = torch.rand((1, *x.shape[1:]), generator=g).to(device)
    opt = torch.optim.Adam(gen.parameters(), lr=lr, betas=(beta1, 0.999))
    with eval_mode(model):
        labels_all = None if target is not None else predict(model, x).argmin(1)  # least-likely class
        for it in range(train_steps):
            idx = sample_batch(n, batch_size, g, device)
            delta = scale_to_budget(gen(z), eps)
            logits = model((as_float(x[idx]) + delta).clamp(0, 1))
            labels = torch.full_like(idx, int(target)) if target is not None else labels_all[idx]  # type: ignore[index]
            loss = gap_loss(logits, labels)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RunError(f"GAP's generator diverged (its loss became {value} at step {it + 1}); "
                               "lower attack.lr or check that the model gives finite outputs.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            report(progress, it + 1, train_steps, 10, {"loss": value})
            if stopped(should_stop):
                break
        gen.eval()
        with torch.no_grad():
            delta = scale_to_budget(gen(z).float(), eps)
    if not torch.isfinite(delta).all():
        raise RunError("GAP's generator diverged (its output is not finite); lower attack.lr and re-run.")
    return delta.clamp(-eps, eps).cpu()
