"""Memory and decode rate for an ImageNet-size repair set: held whole vs streamed.

Generates ``--n`` JPEGs (default 64,000, the paper's 5% of ImageNet) of 256×256 in an
image folder, then, each in a fresh process so peaks do not mix, takes the whole set as a
subset at ``--size`` (default 224) the way a run does and makes one evaluation pass over
it with a model on ``--device``:

- ``held``: everything in RAM and then on the device (what demtui did before
  ``run.memory_budget``; the budget set to none);
- ``streamed``: over the budget: decoded by worker processes into a memory-mapped file,
  then streamed through a DataLoader (workers, pinned memory on CUDA, prefetch).

Reports the decode rate (images/s, and 1 process against ``--workers``), peak RSS
(``ru_maxrss``, which counts the touched pages of the mapped file too, and the peak of
anonymous memory, which does not) and peak GPU memory on CUDA.

    uv run python benchmarks/data_scale.py --n 2000 --device cpu        # a CPU dry run
    python3 benchmarks/data_scale.py --device cuda                      # the 64k row, on a GPU box
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _write_images(args: tuple[str, int, int, int]) -> None:
    """One worker's share of the generated folder: smooth random colour fields, as JPEG."""
    import numpy as np
    from PIL import Image

    root, start, stop, classes = args
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((256, 256), Image.BILINEAR)
        d = Path(root) / f"c{i % classes:03d}"
        img.save(d / f"{i:06d}.jpg", quality=90)


def generate(root: Path, n: int, classes: int, procs: int) -> float:
    from multiprocessing import Pool

    for c in range(classes):
        (root / f"c{c:03d}").mkdir(parents=True, exist_ok=True)
    step = max(1, -(-n // (procs * 4)))
    t0 = time.perf_counter()
    with Pool(procs) as pool:
        pool.map(_write_images, [(str(root), s, min(n, s + step), classes) for s in range(0, n, step)])
    return time.perf_counter() - t0


class AnonPeak:
    """Samples RssAnon from /proc (Linux) in a thread: memory that cannot be paged out to a file."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _read(self) -> int:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return max(self.peak, self._read())


def child(args: argparse.Namespace) -> None:
    import torch

    from demtui.context import RunContext
    from demtui.data import budget_bytes, place, take_subset
    from demtui.evaluation import predict_under
    from demtui.plugins.datasets.vision import load_image_folder

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or torch.get_num_threads()))
    device = torch.device(args.device)
    anon = AnonPeak()
    splits = load_image_folder(Path(args.root), image_size=args.size, val_fraction=0.01, seed=0)
    hold = None if args.child == "held" else budget_bytes(args.budget_gib)
    t0 = time.perf_counter()
    x, y = take_subset(splits.train, len(splits.train), seed=0, hold_bytes=hold, workers=args.workers,
                       spill_dir=args.spill)
    decode_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    x = place(x, device, hold)
    torch.manual_seed(0)  # the same weights in every mode: the checksums must agree
    if args.model == "none":  # memory and decode only
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))
    elif args.model == "smallcnn":
        from demtui.plugins.models.small_cnn import SmallCNN

        model = SmallCNN(10, width=16)
    else:
        from demtui.plugins.models.builders import build_torchvision

        model = build_torchvision(args.model, 10, False)
    model = model.to(device).eval()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    ctx = RunContext(device=device, hold_bytes=hold)
    t0 = time.perf_counter()
    pred = predict_under(model, x, [None], batch_size=args.batch, ctx=ctx)
    eval_s = time.perf_counter() - t0
    out = {"mode": args.child, "n": int(x.shape[0]), "bytes": int(x.numel()), "decode_s": round(decode_s, 2),
           "decode_rate": round(x.shape[0] / decode_s, 1), "eval_s": round(eval_s, 2),
           "eval_rate": round(x.shape[0] / eval_s, 1), "checksum": int(pred.sum()),
           "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak_anon": anon.stop(),
           "peak_gpu": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
           "workers": args.workers, "threads": torch.get_num_threads()}
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="resnet18", help="torchvision model, smallcnn, or none (a linear layer) for the evaluation pass")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--budget-gib", type=float, default=None,
                    help="memory budget of the streamed run (default: run.memory_budget's default, 0 below 2 GiB sets)")
    ap.add_argument("--root", default=None, help="an existing generated folder (skips generation)")
    ap.add_argument("--modes", default="held,streamed")
    ap.add_argument("--serial", action="store_true", help="also decode with 1 process (decode-rate baseline)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spill", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    from demtui.data import DEFAULT_BUDGET_GIB

    work = Path(tempfile.mkdtemp(prefix="demtui-data-scale-"))
    root = Path(args.root) if args.root else work / "images"
    if not args.root:
        gen_s = generate(root, args.n, args.classes, min(16, os.cpu_count() or 1))
        print(f"generated {args.n} JPEGs (256×256) in {gen_s:.1f} s", file=sys.stderr)
    held_bytes = args.n * 3 * args.size * args.size
    budget = args.budget_gib
    if budget is None:  # the run default, unless the set is too small to exceed it: then force streaming
        budget = DEFAULT_BUDGET_GIB if held_bytes > DEFAULT_BUDGET_GIB * (1 << 30) else 0.0
    runs = [(m, args.workers) for m in args.modes.split(",")] + ([("streamed", 0)] if args.serial else [])
    rows = []
    for mode, workers in runs:
        cmd = [sys.executable, __file__, "--child", mode, "--root", str(root), "--size", str(args.size),
               "--device", args.device, "--model", args.model, "--batch", str(args.batch), "--workers", str(workers),
               "--budget-gib", str(budget), "--spill", str(work / "spill")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    gib = lambda b: "–" if b is None else f"{b / (1 << 30):.2f}"  # noqa: E731
    print(f"set: {args.n} images @{args.size} = {gib(held_bytes)} GiB as uint8; streamed budget {budget} GiB; "
          f"device {args.device}; model {args.model}")
    print("| mode | workers | decode (img/s) | eval pass (img/s) | peak RSS (GiB) | peak anon RSS (GiB) | peak GPU (GiB) | checksum |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['workers']} | {r['decode_rate']:.0f} | {r['eval_rate']:.0f} | {gib(r['peak_rss'])} | "
              f"{gib(r['peak_anon'])} | {gib(r['peak_gpu'])} | {r['checksum']} |")


if __name__ == "__main__":
    main()
