"""Repair throughput: Democratic Training samples/s vs the same model's plain training step.

The number we own is the ratio. One Democratic Training step on a batch of B clean
images costs m generator passes (forward + input-gradient backward) plus one training
forward/backward on 2B images, so the ideal ratio is about 1 / (m + 2) of a plain
step's throughput; anything far below that is overhead of ours.

    uv run python benchmarks/repair_throughput.py --device cpu --model smallcnn
    uv run python benchmarks/repair_throughput.py --device cuda --model torchvision:resnet50 --size 224

Prints a Markdown row per configuration; paste into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def build(model: str, num_classes: int):
    if model == "smallcnn":
        from demtui.plugins.models.small_cnn import SmallCNN

        return SmallCNN(num_classes, width=16), "gap"
    from demtui.plugins.models import builders
    from demtui.plugins.models.layers import resolve_layers

    family, _, arch = model.partition(":")
    if family == "wrn":
        net = builders.build_wrn(arch, num_classes)
        return net, "net." + resolve_layers(net.net, "wrn")["deep2"]
    build_fn = builders.build_torchvision if family == "torchvision" else builders.build_timm
    net = build_fn(arch, num_classes, False)
    return net, "net." + resolve_layers(net.net, arch)["deep2"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_rate(model, x, y, device, repeats: int, amp) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    model.train()
    rates = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        with amp():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        rates.append(len(x) / (time.perf_counter() - t0))
    return rates


def repair_rate(model, x, y, layer, device, repeats: int, steps: int, amp) -> list[float]:
    from demtui.plugins.defenses.democratic import democratic_training

    import copy

    rates = []
    xu = (x * 255).byte()
    for _ in range(repeats):
        fresh = copy.deepcopy(model)  # repeated in-place repairs on random labels drift into denormals
        sync(device)
        t0 = time.perf_counter()
        with amp():
            democratic_training(fresh, xu, y, layer_name=layer, steps=steps, epochs=1, refine_epochs=0,
                                batch_size=len(x) // 4, collapse_check=False, device=device)
        sync(device)
        rates.append(len(x) / (time.perf_counter() - t0))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smallcnn")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device(args.device)
    from demtui.context import resolve_device  # noqa: F401 - same device rules as runs

    model, layer = build(args.model, 10)
    model.to(device)
    amp_dtype = torch.bfloat16 if device.type == "cuda" else None
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)

    def amp():
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else torch.autocast("cpu", enabled=False)

    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(device)
    plain_rate(model, x, y, device, 2, amp)  # warm-up
    plain = statistics.median(plain_rate(model, x, y, device, args.repeats, amp))
    # One "epoch" over 4 batches of batch size, so per-epoch fixed costs (probes) are included.
    x4, y4 = x.repeat(4, 1, 1, 1), y.repeat(4)
    repair_rate(model, x4[: args.batch], y4[: args.batch], layer, device, 1, args.steps, amp)
    repair = statistics.median(repair_rate(model, x4, y4, layer, device, args.repeats, args.steps, amp))
    ideal = plain / (args.steps + 2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print("| model | device | input | batch | m | plain fwd+bwd (img/s) | repair (img/s) | ratio | ideal 1/(m+2) | repair / ideal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.model} | {name} | {args.size} | {args.batch} | {args.steps} | {plain:.0f} | {repair:.0f} | "
          f"{repair / plain:.3f} | {1 / (args.steps + 2):.3f} | {repair / ideal:.2f} |")


if __name__ == "__main__":
    main()
