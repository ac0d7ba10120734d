"""Held and streamed data paths give the same images, batches and results.

Above ``run.memory_budget`` subsets go to a memory-mapped file and stream through a
DataLoader with worker processes; below it they are held and sliced. Nothing measured
may depend on which path ran.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from demtui.cli import app
from demtui.context import RunContext
from demtui.data import batches, place, should_stream, spill_tensor, take_subset
from demtui.evaluation import entropies, predict_under
from demtui.perturbation import AdditivePerturbation
from demtui.plugins.datasets.vision import load_image_folder
from demtui.plugins.models.small_cnn import SmallCNN


def _folder(root: Path, classes: int = 3, per_class: int = 12) -> None:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            arr = torch.randint(0, 256, (18, 22, 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(arr).save(root / f"c{c}" / f"{i}.png")


def test_parallel_decode_and_spill_give_the_same_subset(tmp_path: Path) -> None:
    _folder(tmp_path / "data")
    splits = load_image_folder(tmp_path / "data", image_size=16, val_fraction=0.25, seed=0)
    x0, y0 = take_subset(splits.train, 20, seed=3, workers=0)
    x2, y2 = take_subset(splits.train, 20, seed=3, workers=2)
    xs, ys = take_subset(splits.train, 20, seed=3, workers=2, hold_bytes=0, spill_dir=tmp_path / "spill")
    assert x0.shape == (20, 3, 16, 16) and x0.dtype == torch.uint8
    assert torch.equal(x0, x2) and torch.equal(y0, y2)
    assert torch.equal(x0, xs) and torch.equal(y0, ys)
    assert list((tmp_path / "spill").iterdir()) == []  # the mapped file is unlinked at once


def test_held_tensors_over_the_budget_spill_to_a_mapped_file(tmp_path: Path) -> None:
    from demtui.data import TensorImageDataset

    x = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    ds = TensorImageDataset(x, torch.arange(50) % 5)
    held = take_subset(ds, 30, seed=1)
    spilled = take_subset(ds, 30, seed=1, hold_bytes=100, spill_dir=tmp_path)
    assert torch.equal(held[0], spilled[0]) and torch.equal(held[1], spilled[1])
    assert held[0].numel() == 30 * 48 > 100  # it really was over the budget
    # The budget also decides placement and whether evaluation streams.
    cpu = torch.device("cpu")
    assert should_stream(spilled[0], cpu, 100) and not should_stream(spilled[0], cpu, None)
    assert place(spilled[0], cpu, 100) is spilled[0]


def test_spill_tensor_is_writable_and_sized() -> None:
    t = spill_tensor((3, 2, 2))
    t[:] = 7
    assert t.shape == (3, 2, 2) and int(t.sum()) == 7 * 12


def test_streamed_batches_equal_sliced_batches() -> None:
    x = torch.randint(0, 256, (37, 3, 5, 5), dtype=torch.uint8)
    cpu = torch.device("cpu")
    sliced = list(batches(x, 8, cpu, stream=False))
    streamed = list(batches(x, 8, cpu, stream=True, workers=2))
    assert [len(b) for b in streamed] == [8, 8, 8, 8, 5]
    assert all(torch.equal(a, b) for a, b in zip(sliced, streamed, strict=True))


def test_predictions_and_entropies_are_identical_held_or_streamed() -> None:
    torch.manual_seed(0)
    model = SmallCNN(4, width=8).eval()
    x = torch.randint(0, 256, (45, 3, 16, 16), dtype=torch.uint8)
    pert = AdditivePerturbation(torch.full((1, 3, 16, 16), 0.03), eps=0.04)
    ctx = RunContext(device=torch.device("cpu"))
    held = predict_under(model, x, [None, pert], batch_size=16, ctx=ctx, stream=False)
    streamed = predict_under(model, x, [None, pert], batch_size=16, ctx=ctx, stream=True)
    assert held.shape == (2, 45) and torch.equal(held, streamed)
    ctx.hold_bytes = 0  # the budget alone switches to streaming
    assert torch.equal(predict_under(model, x, [pert], batch_size=16, ctx=ctx)[0], held[1])
    paths = {"gap": "gap"}
    e_held = entropies(model, x, paths, batch_size=10, ctx=ctx, stream=False)
    e_streamed = entropies(model, x, paths, batch_size=10, ctx=ctx, stream=True)
    assert torch.equal(e_held["gap"], e_streamed["gap"])


TINY = ["--set", "dataset.train_size=1000", "--set", "dataset.test_size=200", "--set", "victim.epochs=1",
        "--set", "attack.iterations=5", "--set", "defense.epochs=1", "--set", "defense.refine_epochs=0",
        "--set", "run.eval_samples=60", "--set", "run.attack_samples=60", "--targets", "1",
        "--set", "run.threads=1", "--set", "run.secondary=false", "--set", "defense.subset_size=60"]


def test_a_run_streaming_everything_gives_the_same_summary(tmp_path: Path) -> None:
    runner = CliRunner()

    def run(name: str, *extra: str) -> dict:
        result = runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu",
                                     "--out", str(tmp_path / name), *TINY, *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["summary"]

    held = run("held")
    streamed = run("streamed", "--set", "run.memory_budget=0")
    for key in ("attack_seconds", "defense_seconds"):
        held.pop(key), streamed.pop(key)
    assert held == streamed
