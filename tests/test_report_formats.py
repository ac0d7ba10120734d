"""`demtui report DIR --format md|csv|tex`: per-target rows, and a grid's mean ± std over seeds.

Run directories and grid folders are written by hand here (results.json, spec.toml,
sweep.json), so every number below is computed by hand.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from demtui.cli import app


def _results(sr: tuple[float, float], sr_after: tuple[float, float], cacc: float) -> dict[str, Any]:
    """A finished targeted run with targets 1 and 2 (means in the summary, as the engine writes it)."""
    def metrics(v: float) -> dict[str, float]:
        return {"sr": v, "aacc": 1 - v, "fooling_rate": v, "cacc": cacc}

    return {"stages": {"baseline": {"status": "finished", "cacc": cacc, "classes": ["a", "ring", "square"]},
                       "attack": {"targets": {"1": {"metrics": metrics(sr[0])}, "2": {"metrics": metrics(sr[1])}}},
                       "evaluate": {"targets": {"1": metrics(sr_after[0]), "2": metrics(sr_after[1])}}},
            "summary": {"mode": "targeted", "sr_before": sum(sr) / 2, "sr_after": sum(sr_after) / 2,
                        "aacc_before": 1 - sum(sr) / 2, "aacc_after": 1 - sum(sr_after) / 2, "cacc_before": cacc,
                        "cacc_after": cacc - 0.1, "delta_cacc": -0.1, "secondary_sr": None}}


def _run_dir(path: Path, results: dict[str, Any]) -> Path:
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(results))
    (path / "spec.toml").write_text('[run]\nseed = 0\n[model]\nname = "smallcnn"\n[dataset]\nname = "shapes"\n'
                                    '[attack]\nname = "df-uap"\n[defense]\nname = "democratic"\n')
    return path


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    """eps ∈ {4, 8} × seed ∈ {0, 1}; the (8, 1) run failed."""
    root = tmp_path / "grid"
    cells = [("4", 0, (0.8, 0.6), (0.2, 0.0)), ("4", 1, (0.6, 0.4), (0.0, 0.2)), ("8", 0, (1.0, 0.8), (0.4, 0.2)),
             ("8", 1, None, None)]
    entries = []
    for eps, seed, sr, after in cells:
        label = f"attack.eps={eps}_255,run.seed={seed}"
        if sr is not None:
            _run_dir(root / label, _results(sr, after, 0.9))
        entries.append({"label": label, "values": {"attack.eps": f"{eps}/255", "run.seed": seed},
                        "status": "finished" if sr else "failed"})
    (root / "sweep.json").write_text(json.dumps({"version": 2, "kind": "grid", "sweep": entries}))
    return root


def _report(path: Path, fmt: str) -> str:
    res = CliRunner().invoke(app, ["report", str(path), "--format", fmt])
    assert res.exit_code == 0, res.output
    return res.output


def test_a_runs_csv_has_a_row_per_target_and_an_all_row_with_numbers_as_numbers(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run", _results((0.8, 0.6), (0.2, 0.0), 0.9))
    rows = list(csv.DictReader(io.StringIO(_report(run, "csv"))))
    assert [r["Target"] for r in rows] == ["1 (ring)", "2 (square)", "all"]
    assert [float(r["SR before"]) for r in rows] == [0.8, 0.6, 0.7]
    assert float(rows[0]["AAcc after"]) == 0.8 and rows[0]["CAcc before"] == ""  # CAcc is the run's, not a target's
    assert float(rows[2]["ΔCAcc"]) == -0.1 and rows[2]["SR secondary"] == ""


def test_a_runs_markdown_and_latex(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run", _results((0.8, 0.6), (0.2, 0.0), 0.9))
    md = _report(run, "md")
    assert "| 1 (ring) | 0.800 | 0.200 | 0.200 | 0.800 | — |" in md
    tex = _report(run, "tex")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"all & 0.700 & 0.100 & 0.300 & 0.900 & -- & 0.900 & 0.800 & -0.100" in tex
    assert r"$\Delta$CAcc" in tex


def test_a_grid_groups_seeds_into_mean_and_std_per_target(grid: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(_report(grid, "csv"))))
    eps4 = {r["Target"]: r for r in rows if r["attack.eps"] == "4/255"}
    assert list(eps4) == ["all", "1", "2"] and eps4["all"]["Runs"] == "2/2"
    # target 1 at eps 4: SR 0.8 (seed 0) and 0.6 (seed 1): mean 0.7, sample std 0.1414
    assert float(eps4["1"]["SR before"]) == pytest.approx(0.7)
    assert float(eps4["1"]["SR before std"]) == pytest.approx(0.141421, abs=1e-6)
    assert float(eps4["all"]["SR before"]) == pytest.approx(0.6)  # seeds' means 0.7 and 0.5
    eps8 = {r["Target"]: r for r in rows if r["attack.eps"] == "8/255"}
    assert eps8["all"]["Runs"] == "1/2" and float(eps8["2"]["SR before"]) == pytest.approx(0.8)
    assert float(eps8["2"]["SR before std"]) == 0.0  # one finished seed
    assert "run.seed" not in rows[0]


def test_a_grids_latex_is_booktabs_with_plus_minus(grid: Path) -> None:
    tex = _report(grid, "tex")
    assert r"4/255 & 1 & 2/2 & 0.700 $\pm$ 0.141" in tex
    assert r"8/255 & 2 & 1/2 & 0.800 &" in tex  # one value: no ±
    assert "mean ± std over seeds".replace("±", r"$\pm$") in tex
    md = _report(grid, "md")
    assert "| 4/255 | all | 2/2 | 0.600 ± 0.141 |" in md


def test_bad_format_and_non_run_folders_are_one_sentence(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--format", "xlsx"])
    assert res.exit_code == 2 and "Unknown format 'xlsx'" in res.output and "md, csv, tex" in res.output
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--format", "csv"])
    assert res.exit_code != 0 and "not a demtui run directory" in " ".join(res.output.split())
