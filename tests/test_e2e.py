"""The quickstart end to end on CPU, the run directory it leaves, and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from demtui.cli import app
from demtui.events import read_events

runner = CliRunner()

#: A smaller run than the quickstart, for tests about the engine rather than the science.
TINY = ["--set", "dataset.train_size=1000", "--set", "dataset.test_size=200", "--set", "victim.epochs=1",
        "--set", "attack.iterations=10", "--set", "defense.epochs=1", "--set", "defense.refine_epochs=0",
        "--set", "run.eval_samples=100", "--set", "run.attack_samples=100", "--targets", "1,2"]


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_quickstart_repairs_the_victim(tmp_path: Path) -> None:
    """The README's main command: SR ≥ 0.5 before, ≤ 0.10 after, clean accuracy holds."""
    out = tmp_path / "qs"
    doc = _json(runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out)]))
    s = doc["summary"]
    assert s["sr_before"] >= 0.5, s
    assert s["noise_sr"] <= 0.05, s
    assert s["sr_after"] <= 0.10, s
    assert s["delta_cacc"] >= -0.05, s
    assert s["secondary_sr"] is not None
    assert s["entropy_gap_before"] > 0.05  # the UAPs lower entropy at the repair layer (RQ1)
    artifacts = {p.name for p in (out / "artifacts").rglob("*")}
    assert {"defended.safetensors"} <= artifacts
    assert sum(n.endswith(".png") for n in artifacts) >= 4 and sum(n.endswith(".safetensors") for n in artifacts) >= 5
    assert (out / "report.md").read_text().count("|") > 10
    events = read_events(out / "events.jsonl", strict=True)
    kinds = {e["type"] for e in events}
    assert {"run_started", "stage_started", "progress", "entropy", "result", "run_finished"} <= kinds


def test_tiny_run_writes_the_summary_keys_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    doc = _json(runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out), *TINY]))
    for key in ("cacc_before", "cacc_after", "sr_before", "sr_after", "aacc_before", "aacc_after", "delta_cacc"):
        assert key in doc["summary"] and doc["summary"][key] is not None
    assert doc["status"] == "finished" and set(doc["targets"]) == {"1", "2"}
    assert set(doc["stage_seconds"]) == {"baseline", "attack", "analyse", "defend", "evaluate", "secondary", "card"}
    # Re-running without --resume refuses to overwrite; with --resume every stage is skipped.
    again = runner.invoke(app, ["run", "--headless", "--quiet", "--device", "cpu", "--out", str(out), *TINY])
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = _json(runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out),
                                        "--resume", *TINY]))
    assert resumed["summary"] == doc["summary"]
    skipped = [e for e in read_events(out / "events.jsonl") if e["type"] == "stage_skipped"]
    assert len(skipped) == 7


def test_interrupted_run_keeps_finished_stages_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the defense: baseline/attack/analyse stay on disk; --resume finishes the rest."""
    from demtui import stages

    out = tmp_path / "cut"
    real_defend = stages.defend

    def interrupted(state):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "defend", interrupted)
    cut = runner.invoke(app, ["run", "--headless", "--quiet", "--device", "cpu", "--out", str(out), *TINY])
    assert cut.exit_code == 130, cut.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["stages"]) == {"baseline", "attack", "analyse"}
    uaps = sorted(p.name for p in (out / "artifacts").rglob("*.safetensors"))
    assert len(uaps) == 2

    monkeypatch.setattr(stages, "defend", real_defend)
    doc = _json(runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out),
                                    "--resume", *TINY]))
    assert doc["summary"]["sr_after"] is not None
    events = read_events(out / "events.jsonl", strict=True)
    assert [e["stage"] for e in events if e["type"] == "stage_skipped"] == ["baseline", "attack", "analyse"]
    assert sorted(p.name for p in (out / "artifacts").rglob("*.safetensors") if "secondary" not in str(p)
                  and p.name != "defended.safetensors") == uaps


def test_corrupt_events_file_refuses_resume_without_touching_results(tmp_path: Path) -> None:
    out = tmp_path / "bad"
    _json(runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out), *TINY]))
    results_before = (out / "results.json").read_bytes()
    lines = (out / "events.jsonl").read_text().splitlines()
    lines[3] = "{not json"
    (out / "events.jsonl").write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["run", "--headless", "--quiet", "--device", "cpu", "--out", str(out), "--resume", *TINY])
    assert res.exit_code != 0 and "events.jsonl" in res.output and "Traceback" not in res.output
    assert (out / "results.json").read_bytes() == results_before


def test_report_rebuilds_from_the_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    _json(runner.invoke(app, ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out), *TINY]))
    (out / "report.md").unlink()
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0 and (out / "report.md").exists()
