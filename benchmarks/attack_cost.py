"""Per-iteration cost of every attack, and one full attack timed end to end.

Each attack runs through its plugin entry (the path a run takes: autocast and
channels_last on CUDA) at two budgets of its cost knob, k₁ < k₂; the cost of one unit is
(t₂ − t₁)/(k₂ − k₁), which removes set-up costs. The unit is the knob's own: an
iteration is one optimiser step on a batch (DF-UAP, adaptive DF-UAP, FGSM-UAP, LaVAN,
GAP), an epoch is a pass over the attack set (SGD-UAP, SGA), a pass is one DeepFool-UAP
sweep over the attack set (run with fooling_target 1 so every pass happens).

    OMP_NUM_THREADS=1 uv run python benchmarks/attack_cost.py                 # the quickstart victim on CPU
    python3 benchmarks/attack_cost.py --device cuda --model torchvision:resnet50 --size 224 \\
        --attacks df-uap --full 1000                                          # the GPU row: 1000 iters × 32

``--full K`` also times one complete attack of K units (the GPU goal: DF-UAP 1000
iterations × batch 32 on ResNet-50 @224 under 10 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

#: attack → (cost knob, unit, k₁, k₂, extra params)
KNOBS: dict[str, tuple[str, str, int, int, dict]] = {
    "df-uap": ("iterations", "iteration", 10, 40, {}),
    "adaptive-df-uap": ("iterations", "iteration", 10, 40, {}),
    "fgsm-uap": ("iterations", "iteration", 10, 40, {}),
    "lavan": ("iterations", "iteration", 10, 40, {}),
    "gap": ("train_steps", "iteration", 10, 40, {}),
    "sgd-uap": ("epochs", "epoch", 1, 3, {}),
    "sga": ("epochs", "epoch", 1, 2, {}),
    "deepfool-uap": ("max_passes", "pass", 1, 2, {"fooling_target": 1.0}),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def victim(args: argparse.Namespace, device: torch.device):
    """(model, x uint8, y, num_classes, layer): the cached quickstart victim, or a built model."""
    if args.model == "quickstart":
        from demtui.context import RunContext
        from demtui.prepare import prepare
        from demtui.registry import get_registry
        from demtui.spec import quickstart_dict, resolve

        data = quickstart_dict()
        data["run"]["device"] = str(device)
        registry = get_registry()
        prep = prepare(resolve(data, registry), registry, RunContext(device=device))
        n = min(args.samples, len(prep.x_attack))
        return prep.built.module, prep.x_attack[:n], prep.y_attack[:n], len(prep.classes), prep.layer
    sys.path.insert(0, str(Path(__file__).parent))
    from repair_throughput import build

    torch.manual_seed(0)
    model, layer = build(args.model, 10)
    model = model.to(device).eval()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.samples, 3, args.size, args.size), generator=g, dtype=torch.uint8).to(device)
    y = torch.randint(0, 10, (args.samples,), generator=g).to(device)
    return model, x, y, 10, layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="quickstart", help="quickstart (the cached victim) or e.g. torchvision:resnet50")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--samples", type=int, default=256, help="attack-set images")
    ap.add_argument("--attacks", default=",".join(KNOBS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--full", type=int, default=0, help="also time one attack of this many units")
    ap.add_argument("--target", type=int, default=1)
    args = ap.parse_args()
    from demtui.context import RunContext
    from demtui.contracts import AttackData
    from demtui.registry import get_registry

    device = torch.device(args.device)
    model, x, y, classes, layer = victim(args, device)
    data = AttackData(x=x, y=y, num_classes=classes, layer=layer)
    registry = get_registry()
    threads = f"{torch.get_num_threads()} thread(s)" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"model {args.model} @{x.shape[-1]}, {len(x)} attack images, {device} ({threads})")
    print("| attack | unit | ms per unit (median) | k₁ → k₂ | full run |")
    print("|---|---|---|---|---|")
    for name in args.attacks.split(","):
        component = registry.get("attack", name)
        knob, unit, k1, k2, extra = KNOBS[name]
        generate = component.load()
        defaults = component.params.defaults()

        def timed(k: int) -> float:
            params = component.params.validate({**defaults, **extra, knob: k}, owner=name)
            ctx = RunContext(device=device, seed=0)
            sync(device)
            t0 = time.perf_counter()
            generate(model, data, args.target if component.targeted else None, params, ctx)
            sync(device)
            return time.perf_counter() - t0

        timed(k1)  # warm-up (and torch's lazy initialisation)
        costs = sorted((timed(k2) - timed(k1)) / (k2 - k1) for _ in range(args.repeats))
        full = f"{timed(args.full):.2f} s for {args.full} {unit}s" if args.full else "–"
        print(f"| {name} | {unit} | {1000 * costs[len(costs) // 2]:.1f} | {k1} → {k2} | {full} |")


if __name__ == "__main__":
    main()
