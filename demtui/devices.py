"""Which devices the Compose screen offers, found without importing torch.

``nvidia-smi -L`` lists the visible GPUs when it exists (honouring
CUDA_VISIBLE_DEVICES the way CUDA numbers them); otherwise only auto and cpu (and mps
on Apple silicon). A device that vanishes later is caught by the run itself, which
exits with one sentence the Watch screen shows.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    value: str  # what goes into run.device
    label: str  # what the picker shows


def detect_devices(timeout: float = 3.0) -> list[Device]:
    out = [Device("auto", "auto (GPU when available)"), Device("cpu", "CPU")]
    for index, name in enumerate(_nvidia_gpus(timeout)):
        out.append(Device(f"cuda:{index}", f"cuda:{index} {name}"))
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        out.append(Device("mps", "Apple GPU (mps)"))
    return out


def _nvidia_gpus(timeout: float) -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        text = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=timeout, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = [line.split(":", 1)[1].split("(UUID")[0].strip() for line in text.splitlines()
             if line.startswith("GPU ") and ":" in line]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        picks = [v.strip() for v in visible.split(",") if v.strip()]
        if all(p.isdigit() for p in picks):
            names = [names[int(p)] for p in picks if int(p) < len(names)]
        elif visible.strip() in ("", "-1"):
            names = []
    return names
