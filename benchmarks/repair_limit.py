"""Repair throughput as a fraction of the hardware limit, on the same device in the same run.

The limit: the model's best plain training step (images/s, T) and its best
input-gradient pass (forward + backward to the input only, G), each in eager mode and
under torch.compile, bf16 autocast and channels_last on CUDA. One Democratic Training
step on B images needs m input-gradient passes on B and one training step on 2B, so
at best it repairs 1 / (m/G + 2/T) images/s. demtui's repair (``democratic_training`` as
a run calls it; the collapse check is off because random labels trip it) is then timed on the same batches
and reported as a share of that limit (goal: ≥ 85% on a GPU).

    python3 benchmarks/repair_limit.py --device cuda --model wrn:28-10 --batch 128
    python3 benchmarks/repair_limit.py --device cuda --model torchvision:resnet50 --size 224 --batch 64
    uv run python benchmarks/repair_limit.py --device cpu --model smallcnn --iters 2 --compile off  # dry run
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from repair_throughput import build  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def rate(fn, n_images: int, device: torch.device, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def train_step(model, opt, x, y, device):
    def step() -> None:
        with autocast(device):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def grad_pass(model, x, y, device):
    def step() -> None:
        xi = x.detach().requires_grad_(True)
        with autocast(device):
            loss = F.cross_entropy(model(xi), y)
        torch.autograd.grad(loss, xi)
    return step


def limits(model, x, x2, y, y2, device, args) -> dict[str, float]:
    """Best train-step rate on 2B and input-gradient rate on B over eager / compiled variants."""
    out: dict[str, float] = {}
    variants = ["eager"] + (["compile"] if args.compile != "off" else [])
    for variant in variants:
        m = copy.deepcopy(model).train()
        if variant == "compile":
            try:
                m = torch.compile(m)
            except Exception as exc:  # noqa: BLE001 - report and fall back to eager
                print(f"torch.compile unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
        opt = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)
        try:
            out[f"train_{variant}"] = rate(train_step(m, opt, x2, y2, device), len(x2), device, args.iters, args.warmup)
            out[f"grad_{variant}"] = rate(grad_pass(m, x, y, device), len(x), device, args.iters, args.warmup)
        except Exception as exc:  # noqa: BLE001 - a compile failure must not lose the eager row
            print(f"{variant} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return out


def repair_rate(model, xu, yu, layer, device, args) -> float:
    from demtui.plugins.defenses.democratic import democratic_training

    times = []
    for r in range(args.repeats + 1):  # the first is warm-up
        fresh = copy.deepcopy(model)
        sync(device)
        t0 = time.perf_counter()
        with autocast(device):
            democratic_training(fresh, xu, yu, layer_name=layer, steps=args.steps, epochs=1, refine_epochs=0,
                                batch_size=args.batch, collapse_check=False, device=device, seed=r)
        sync(device)
        if r:
            times.append(time.perf_counter() - t0)
    return len(xu) / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smallcnn")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5, help="m, generator steps (the paper: 5 for WRN and ResNet-50)")
    ap.add_argument("--batches", type=int, default=8, help="batches in the timed repair epoch")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--compile", default="auto", choices=("auto", "off"), help="auto: also try torch.compile")
    ap.add_argument("--header", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, layer = build(args.model, 10)
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    xu = torch.randint(0, 256, (args.batch * args.batches, 3, args.size, args.size), generator=g,
                       dtype=torch.uint8).to(device)
    yu = torch.randint(0, 10, (len(xu),), generator=g).to(device)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x = (xu[: args.batch].float() / 255).contiguous(memory_format=fmt)
    y = yu[: args.batch]
    x2, y2 = torch.cat([x, x]).contiguous(memory_format=fmt), torch.cat([y, y])
    lim = limits(model, x, x2, y, y2, device, args)
    best_t = max(v for k, v in lim.items() if k.startswith("train_"))
    best_g = max(v for k, v in lim.items() if k.startswith("grad_"))
    limit = 1 / (args.steps / best_g + 2 / best_t)
    repair = repair_rate(model, xu, yu, layer, device, args)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} thr)"
    cell = lambda k: f"{lim[k]:.0f}" if k in lim else "–"  # noqa: E731
    if args.header:
        print("| model | device | input | B | m | train eager | train compiled | grad eager | grad compiled | "
              "limit 1/(m/G+2/T) | demtui repair | share of limit |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.model} | {name} | {args.size} | {args.batch} | {args.steps} | {cell('train_eager')} | "
          f"{cell('train_compile')} | {cell('grad_eager')} | {cell('grad_compile')} | {limit:.0f} | {repair:.0f} | "
          f"{repair / limit:.0%} |")


if __name__ == "__main__":
    main()
