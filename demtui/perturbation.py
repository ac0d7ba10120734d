"""Perturbations: what an attack returns, able to apply, save and reload itself.

Every perturbation works in pixel space, on float images in [0, 1] of shape (B, C, H, W),
and its output stays in [0, 1]. Saved as safetensors (tensors) plus a small JSON header
in the safetensors metadata, so a UAP crafted once can be re-used bit-exactly.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import torch

from demtui.errors import RunError

_KINDS: dict[str, type["Perturbation"]] = {}
_MODULE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class Perturbation:
    """Base class: subclasses hold tensors and define ``apply``."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls

    def apply(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def tensors(self) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_saved(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> "Perturbation":
        raise NotImplementedError  # pragma: no cover - abstract

    def preview(self) -> torch.Tensor:
        """A uint8 (C, H, W) image that shows the perturbation to a person."""
        raise NotImplementedError  # pragma: no cover - abstract

    def random_like(self, generator: torch.Generator) -> "Perturbation | None":
        """The same threat model with random content: the floor a universal attack must beat.

        The engine measures it beside every attack (``run.noise_baseline``). None means the
        kind has no natural random counterpart; the engine then uses ±ε sign noise.
        """
        return None

    def to(self, device: torch.device | str) -> "Perturbation":
        return self.from_saved({k: v.to(device) for k, v in self.tensors().items()}, self.meta())

    def save(self, path: str | Path) -> Path:
        """Write atomically: a crash mid-write never leaves a half file behind."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # "module" lets load_perturbation import a plugin-defined kind nobody has imported yet.
        header = {"kind": self.kind, "module": type(self).__module__, "meta": json.dumps(self.meta())}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.tensors().items()}, tmp, metadata=header)
            from demtui.store import file_mode

            os.chmod(tmp, file_mode())  # mkstemp made it 0600
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path


def load_perturbation(path: str | Path) -> Perturbation:
    """Reload any saved perturbation, whatever its kind."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise RunError(f"Cannot read the perturbation {path} ({exc}); redo the attack with the same command plus --rerun attack.") from None
    kind = header.get("kind", "")
    module = header.get("module", "")
    if kind not in _KINDS and _MODULE.match(module):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    if kind not in _KINDS:
        raise RunError(f"{path} holds a perturbation of unknown kind '{kind}'; install the plugin that made it.")
    return _KINDS[kind].from_saved(tensors, json.loads(header.get("meta", "{}")))


def project_linf(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """δ projected onto the L∞ ball of radius ``eps`` (elementwise clamp): call it after every step.

    The engine checks every additive perturbation against the attack's ``eps`` (docs/plugins.md,
    "Budgets"); projecting in float32 keeps δ inside it exactly.
    """
    return delta.float().clamp(-float(eps), float(eps))


def project_image(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """x + δ kept in the valid image range [0, 1] (what ``AdditivePerturbation.apply`` returns)."""
    return (x + delta).clamp(0.0, 1.0)


class AdditivePerturbation(Perturbation):
    """x ↦ clamp(x + δ, 0, 1) with ‖δ‖∞ ≤ eps: the classic L∞ UAP."""

    kind = "additive"

    def __init__(self, delta: torch.Tensor, eps: float) -> None:
        if delta.dim() == 3:
            delta = delta.unsqueeze(0)
        self.delta = delta.detach().float().clamp(-eps, eps)
        self.eps = float(eps)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.delta.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"delta": self.delta}

    def meta(self) -> dict[str, Any]:
        return {"eps": self.eps}

    @classmethod
    def from_saved(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> "AdditivePerturbation":
        return cls(tensors["delta"], float(meta["eps"]))

    @classmethod
    def sign_noise(cls, shape: tuple[int, ...], eps: float, generator: torch.Generator) -> "AdditivePerturbation":
        """±eps per pixel: random noise of the largest magnitude the budget allows."""
        signs = torch.randint(0, 2, tuple(shape), generator=generator).float() * 2 - 1
        return cls(signs * eps, eps)

    def random_like(self, generator: torch.Generator) -> "AdditivePerturbation":
        return self.sign_noise(tuple(self.delta.shape), self.eps, generator)

    def linf(self) -> float:
        return float(self.delta.abs().max())

    def preview(self) -> torch.Tensor:
        """δ rescaled from [−eps, eps] to [0, 255] so its structure is visible."""
        d = self.delta[0].float().cpu()
        return ((d / (2 * self.eps) + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)

    def as_image(self) -> torch.Tensor:
        """The UAP alone as an input image (mid-grey plus δ), for 'UAP only' entropy."""
        return (0.5 + self.delta).clamp(0, 1)
