"""The heavy side of the crashy test plugin."""

from __future__ import annotations

import torch
from torch import nn

from demtui.api import AdditivePerturbation, DefenseResult, Perturbation


def boom_attack(model, data, target, params, ctx):
    return 1 / 0


def loud_attack(model, data, target, params, ctx):
    eps = params["eps"]
    return AdditivePerturbation(torch.full((1, *data.x.shape[1:]), 4 * eps), 4 * eps)  # 4×ε, "its own" budget


def good_attack(model, data, target, params, ctx):
    g = torch.Generator().manual_seed(ctx.seed + (target or 0))
    eps = params["eps"]
    return AdditivePerturbation((torch.rand((1, *data.x.shape[1:]), generator=g) * 2 - 1) * eps, eps)


class Shift(Perturbation):
    """A custom kind: adds a constant, whatever the attack's budget."""

    kind = "test-shift"

    def __init__(self, amount: torch.Tensor) -> None:
        self.amount = amount.float().reshape(1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.amount.to(x.device, x.dtype)).clamp(0, 1)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"amount": self.amount}

    @classmethod
    def from_saved(cls, tensors, meta):
        return cls(tensors["amount"])

    def preview(self) -> torch.Tensor:
        return torch.zeros((3, 4, 4), dtype=torch.uint8)


def custom_loud(model, data, target, params, ctx):
    return Shift(torch.tensor(0.3))


def boom_defense(model, data, params, ctx):
    raise KeyError("weights")


class Fragile(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 8:
            raise RuntimeError("fragile forward")
        return self.model(x)


def fragile_wrapper(model, data, params, ctx):
    return DefenseResult(model=Fragile(model), wrapper={"fragile": True})


def rebuild_fragile(model, wrapper):
    return Fragile(model)


def uap_echo(model, data, params, ctx):
    norms = [round(float(u.delta.abs().max()), 6) for u in data.uaps]
    return DefenseResult(model=model, history={"uaps": len(data.uaps), "uap_linf": norms, "subset": int(data.x.shape[0]),
                                               "layer": data.layer})


def boom_data(params, ctx):
    raise OSError("disk on fire")


def boom_model(arch, num_classes, params, ctx):
    raise ValueError("no such layer")
