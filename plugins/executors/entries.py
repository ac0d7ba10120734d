"""Factories behind the built-in executor records: ``make(params, ctx) -> Executor``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from demtui.executors import ExecutorContext


def inline(params: dict[str, Any], ctx: ExecutorContext):
    from demtui.executors.inline import InlineExecutor

    return InlineExecutor(registry=ctx.registry_file, listeners=ctx.listeners)


def local(params: dict[str, Any], ctx: ExecutorContext):
    """Slots: every listed (or visible) device, ``per_device`` runs each; CPU runs split the cores."""
    from demtui.devices import detect_devices
    from demtui.executors.local import LocalProcessExecutor, device_key

    devices = [d.strip() for d in str(params.get("devices") or "").split(",") if d.strip()]
    gpus = [d.value for d in detect_devices() if d.value.startswith("cuda")]
    devices = [device_key(d, len(gpus)) for d in devices] or gpus or ["cpu"]
    jobs = int(params.get("jobs") or 0)
    per_device = int(params.get("per_device") or 0) or max(1, math.ceil(jobs / len(devices)) if jobs else 1)
    env = {**os.environ, **ctx.env}
    cpu_runs = per_device if devices == ["cpu"] else 0
    if cpu_runs > 1 and "OMP_NUM_THREADS" not in os.environ:
        # k runs on one CPU: give each its share of the cores instead of k × all of them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpu_runs))
    return LocalProcessExecutor(jobs=jobs, devices=devices, per_device=per_device, gpus=len(gpus), env=env,
                                max_retries=int(params.get("max_retries", 1)),
                                command=_command(ctx.registry_file), die_with_parent=True)


def _command(registry_file: str | None):
    from demtui.executors.local import default_command

    def command(run_dir: Path, spec_file: Path | None, device: str, resume: bool) -> list[str]:
        cmd = default_command(run_dir, spec_file, device, resume)
        return cmd + ["--registry", registry_file] if registry_file else cmd
    return command


def ray(params: dict[str, Any], ctx: ExecutorContext):
    from demtui.executors.ray_executor import RayExecutor

    executor = RayExecutor(address=str(params.get("address") or ""), num_cpus=float(params.get("num_cpus", 1.0)),
                           num_gpus=0.0, max_retries=int(params.get("max_retries", 2)),
                           local_cpus=int(params.get("local_cpus") or 0), registry=ctx.registry_file, env=ctx.env)
    gpus = params.get("num_gpus")
    if gpus is None:
        gpus = 1.0 if executor.ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    executor.set_gpus(float(gpus))
    if params.get("check_shared", True):
        executor.check_shared(ctx.root)
    return executor


def slurm(params: dict[str, Any], ctx: ExecutorContext):
    from demtui.executors.slurm import SlurmExecutor

    folder = Path(params.get("folder") or ctx.root / ".submitit").expanduser()
    return SlurmExecutor(folder=folder, partition=params.get("partition", ""), time_min=int(params.get("time", 120)),
                         gpus=int(params.get("gpus", 1)), cpus=int(params.get("cpus", 4)),
                         mem_gb=float(params.get("mem_gb") or 0), account=params.get("account", ""),
                         qos=params.get("qos", ""), constraint=params.get("constraint", ""),
                         cluster=params.get("cluster", "auto"), max_retries=int(params.get("max_retries", 1)),
                         registry=ctx.registry_file, env=ctx.env)
