"""RunContext: what every stage and plugin entry receives besides its own inputs.

It carries the device and its speed settings (bf16 autocast and channels_last on CUDA),
the seed, an ``emit`` for events, per-stage progress and cooperative cancellation, so
plugins never need to know who is watching.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from demtui.errors import DeviceError
from demtui.events import EventBus


class Cancelled(Exception):
    """Raised inside a stage when the user asked the run to stop (Ctrl-C, SIGTERM, TUI)."""


def resolve_device(name: str) -> torch.device:
    """Turn auto|cpu|cuda[:i]|mps into a device that exists, or say why it does not."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"Device '{name}' is not a device name; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            seen = f"{count} CUDA device(s) are visible" if count else "no CUDA device is visible"
            raise DeviceError(f"Device '{name}' does not exist here ({seen}); use --device cpu or auto.")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("Device 'mps' is not available on this machine; use --device cpu or auto.")
    elif device.type != "cpu":
        raise DeviceError(f"Device '{name}' is not supported; use auto, cpu, cuda, cuda:N or mps.")
    return device


@dataclass
class RunContext:
    device: torch.device
    seed: int = 0
    bus: EventBus | None = None
    artifacts: Path | None = None
    stage: str = ""
    cancel_requested: bool = False
    progress_interval: float = 0.25
    hold_bytes: int | None = None  # image sets above this stream instead of sitting on the device (run.memory_budget)
    _last_progress: float = field(default=0.0, repr=False)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """bf16 autocast on CUDA (Hopper/Ampere run it at full speed); none elsewhere."""
        return torch.bfloat16 if self.device.type == "cuda" else None

    @property
    def channels_last(self) -> bool:
        return self.device.type == "cuda"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.amp_dtype is None:
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype):
                yield

    def emit(self, type: str, **fields: Any) -> None:
        if self.bus is not None:
            self.bus.emit(type, **fields)

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)

    def progress(self, done: int, total: int, info: dict[str, Any] | None = None) -> None:
        """Throttled progress for the current stage; also the cancellation checkpoint."""
        self.check_cancelled()
        now = time.monotonic()
        if done >= total or now - self._last_progress >= self.progress_interval:
            self._last_progress = now
            self.emit("progress", stage=self.stage, done=int(done), total=int(total), info=_plain(info or {}))

    def should_stop(self) -> bool:
        return self.cancel_requested

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise Cancelled(self.stage)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed (reproducible on CPU)."""
        return torch.Generator().manual_seed(self.seed * 1000 + offset)


def _plain(info: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(float(v), 6) if isinstance(v, (float, torch.Tensor)) else v) for k, v in info.items()}
