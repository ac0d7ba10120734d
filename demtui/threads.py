"""How many CPU threads a run's torch may use (``run.threads``).

torch defaults to one intra-op thread per core. On a shared machine whose cores are
already busy, that oversubscribes them: on a loaded 2-core box a DF-UAP step ran about
7× slower with 2 threads than with 1. So ``run.threads = 0`` (auto) takes the cores
that are free by the 1-minute load average, at least one; a count the user (or an
executor, through ``OMP_NUM_THREADS``) already chose always wins.
"""

from __future__ import annotations

import os

#: Environment variables through which a user or an executor has already chosen.
_CHOSEN = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def auto_threads(cores: int | None = None, load: float | None = None) -> int:
    """Free cores by load average (rounded), between 1 and ``cores``."""
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average (Windows): assume an idle machine
            load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def choose_threads(requested: int, device_type: str, env: dict[str, str] | None = None,
                   cores: int | None = None, load: float | None = None) -> tuple[int | None, str]:
    """(threads to set or None to leave torch alone, why) for ``run.threads = requested``."""
    env = os.environ if env is None else env
    if requested:
        return requested, f"run.threads={requested}"
    chosen = next((k for k in _CHOSEN if env.get(k)), None)
    if chosen:
        return None, f"{chosen}={env[chosen]}"
    if device_type != "cpu":
        return None, f"torch's default (device {device_type})"
    n = auto_threads(cores, load)
    return n, "auto: free cores by load average"


def apply_threads(requested: int, device_type: str) -> str:
    """Set torch's intra-op threads for this run; returns a log line saying what and why."""
    import torch

    n, why = choose_threads(requested, device_type)
    if n is not None:
        torch.set_num_threads(n)
    return f"Using {torch.get_num_threads()} CPU thread(s) ({why})."
