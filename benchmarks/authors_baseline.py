"""demtui's repair loop against a baseline written from the authors' described recipe.

The baseline follows ``shared/PAPER.md``'s account of the authors' public code, written
here from that description (none of their code is used): eager fp32; the model in train
mode throughout; the repair subset read from decoded image files by a DataLoader that
decodes them again every epoch; a sample generator with a random start, m steps of
(ε/4)·sign(∇(−H)) and δ clamped to the ε-ball (and x+δ to [0, 1], as demtui does);
then *separate* forward passes for the perturbed and the clean batch, loss
α·CE(x+δ) + (1−α)·CE(x), SGD with momentum.

Identical work on both sides: the quickstart's victim (trained once, cached), the same
repair subset (the defend stage's seeded 5%), the quickstart's Democratic Training
settings (ε 16/255, m 10, α 0.9, lr 3e-3, batch 32; ``--epochs`` epochs, no clean
refinement). The numbers out are clean accuracy on the evaluation set and the success
rate of one DF-UAP crafted against the victim before repair.

    OMP_NUM_THREADS=1 uv run python benchmarks/authors_baseline.py --epochs 2 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


class DecodedFiles(Dataset):
    """PNG files decoded with PIL on every access, as a torchvision-style folder loader does."""

    def __init__(self, files: list[Path], labels: list[int]) -> None:
        self.files, self.labels = files, labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import numpy as np
        from PIL import Image

        with Image.open(self.files[i]) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), self.labels[i]


def write_pngs(x: torch.Tensor, y: torch.Tensor, root: Path) -> DecodedFiles:
    from PIL import Image

    files = []
    for i in range(len(x)):
        path = root / f"{i:05d}.png"
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(path)
        files.append(path)
    return DecodedFiles(files, [int(v) for v in y])


def flat_entropy(feat: torch.Tensor) -> torch.Tensor:
    """Softmax over every element of the flattened layer output; mean entropy over the batch."""
    p = torch.softmax(feat.flatten(1), dim=1)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1).mean()


def baseline_repair(model: nn.Module, files: DecodedFiles, layer: str, *, epochs: int, eps: float, steps: int,
                    alpha: float, lr: float, batch_size: int, seed: int) -> None:
    captured: dict[str, torch.Tensor] = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("h", out))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = DataLoader(files, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    model.train()  # train mode throughout, generation included
    try:
        for _ in range(epochs):
            for xb, yb in loader:  # decodes the files again every epoch
                delta = (torch.rand(xb.shape, generator=g) * 2 - 1) * eps
                x_en = (xb + delta).clamp(0, 1)
                for _ in range(steps):
                    x_en = x_en.detach().requires_grad_(True)
                    model(x_en)
                    (grad,) = torch.autograd.grad(flat_entropy(captured["h"]), x_en)
                    with torch.no_grad():
                        x_en = x_en - eps / 4 * grad.sign()
                        x_en = (xb + (x_en - xb).clamp(-eps, eps)).clamp(0, 1)
                loss = alpha * F.cross_entropy(model(x_en.detach()), yb) + (1 - alpha) * F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        handle.remove()
    model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target", type=int, default=0)
    args = ap.parse_args()

    from demtui.context import RunContext
    from demtui.data import take_subset
    from demtui.evaluation import predict_under
    from demtui.plugins.attacks.df_uap import craft_df_uap
    from demtui.plugins.defenses.democratic import democratic_training
    from demtui.prepare import prepare
    from demtui.registry import get_registry
    from demtui.spec import quickstart_dict, resolve

    registry = get_registry()
    data = quickstart_dict()
    data["run"]["device"] = "cpu"
    spec = resolve(data, registry)
    ctx = RunContext(device=torch.device("cpu"), seed=0)
    prep = prepare(spec, registry, ctx)  # trains the victim once (cached under $DEMTUI_CACHE)
    d = dict(spec.defense.params)
    from demtui.boundary import subset_size

    n = subset_size(registry.get("defense", spec.defense.name), d, len(prep.splits.train))
    x, y = take_subset(prep.splits.train, n, seed=spec.run["seed"] + 41)  # the defend stage's subset
    a = dict(spec.attack.params)
    uap = craft_df_uap(prep.built.module, prep.x_attack, prep.y_attack, args.target, eps=a["eps"],
                       iterations=a["iterations"], lr=a["lr"], kappa=a["kappa"], batch_size=a["batch_size"])

    def score(model: nn.Module) -> tuple[float, float]:
        from demtui.perturbation import AdditivePerturbation

        pert = AdditivePerturbation(uap, a["eps"])
        pred = predict_under(model, prep.x_eval, [None, pert], batch_size=256, ctx=ctx)
        yv = prep.y_eval
        keep = yv != args.target
        return float((pred[0] == yv).float().mean()), float((pred[1][keep] == args.target).float().mean())

    knobs = dict(eps=d["eps"], steps=d["steps"], alpha=d["alpha"], lr=d["lr"], batch_size=d["batch_size"])
    rows: dict[str, list[tuple[float, float, float]]] = {"authors' recipe": [], "demtui": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_pngs(x, y, Path(tmp))
        for r in range(args.repeats):  # interleaved, so machine load hits both sides alike
            for name in rows:
                model = copy.deepcopy(prep.built.module)
                t0 = time.process_time(), time.perf_counter()
                if name == "demtui":
                    democratic_training(model, x, y, layer_name=prep.layer, epochs=args.epochs, refine_epochs=0,
                                        bn_mode=d["bn_mode"], seed=r, device="cpu", **knobs)
                else:
                    baseline_repair(model, files, prep.layer, epochs=args.epochs, seed=r, **knobs)
                cpu, wall = time.process_time() - t0[0], time.perf_counter() - t0[1]
                rows[name].append((wall, cpu, *score(model)))
    clean0, sr0 = score(prep.built.module)
    print(f"victim: CAcc {clean0:.3f}, SR {sr0:.3f} (target {args.target}); {n} repair images, {args.epochs} epochs, "
          f"m={d['steps']}, {torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats")
    print("| recipe | wall s (median) | CPU s (median) | CAcc after (mean ± sd) | SR after (mean ± sd) |")
    print("|---|---|---|---|---|")
    for name, vals in rows.items():
        wall, cpu, acc, sr = zip(*vals, strict=True)
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        print(f"| {name} | {statistics.median(wall):.1f} | {statistics.median(cpu):.1f} | "
              f"{statistics.mean(acc):.3f} ± {sd(acc):.3f} | {statistics.mean(sr):.3f} ± {sd(sr):.3f} |")
    base, ours = (statistics.median(v[1] for v in rows[k]) for k in rows)
    base_w, ours_w = (statistics.median(v[0] for v in rows[k]) for k in rows)
    print(f"speed-up of demtui: {base / ours:.2f}× CPU time, {base_w / ours_w:.2f}× wall")


if __name__ == "__main__":
    main()
