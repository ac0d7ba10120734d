"""report.md and the Before/After table: one set of rows, two renderings.

Torch-free: `demtui report RUN` rebuilds the report from results.json alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demtui.provenance import markdown_rows
from demtui.store import RunStore, atomic_write_text


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, float):
        return f"{v:+.{digits}f}" if digits == -1 else f"{v:.{digits}f}"
    return str(v)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, before, after) rows of the headline table."""
    sr = "SR" if summary.get("mode", "targeted") == "targeted" else "Fooling rate"
    delta = summary.get("delta_cacc")
    return [
        ("CAcc", _f(summary.get("cacc_before")), _f(summary.get("cacc_after"))),
        (f"{sr} (same UAPs)", _f(summary.get("sr_before")), _f(summary.get("sr_after"))),
        ("AAcc", _f(summary.get("aacc_before")), _f(summary.get("aacc_after"))),
        ("ΔCAcc", "", "—" if delta is None else f"{delta:+.3f}"),
        (f"{sr}, fresh attack on repaired model", "", _f(summary.get("secondary_sr"))),
        (f"{sr} of random noise (same threat model)", _f(summary.get("noise_sr")), ""),
        ("Entropy gap at repair layer (RQ1)", _f(summary.get("entropy_gap_before")), _f(summary.get("entropy_gap_after"))),
        ("Time (s): attack / defense", _f(summary.get("attack_seconds"), 1), _f(summary.get("defense_seconds"), 1)),
    ]


def target_rows(results: dict[str, Any], classes: list[str] | None = None) -> list[tuple[str, ...]]:
    """Per-target (target, SR before, SR after, AAcc before, AAcc after, SR secondary)."""
    stages = results.get("stages", {})
    before = stages.get("attack", {}).get("targets", {})
    after = stages.get("evaluate", {}).get("targets", {})
    second = stages.get("secondary", {}).get("targets", {})
    rows = []
    for key, entry in before.items():
        m = entry["metrics"]
        a = after.get(key, {})
        s = second.get(key, {}).get("metrics", {})
        metric = "sr" if "sr" in m else "fooling_rate"
        label = key if not classes or not key.isdigit() else f"{key} ({classes[int(key)]})"
        rows.append((label, _f(m.get(metric)), _f(a.get(metric)), _f(m.get("aacc")), _f(a.get("aacc")), _f(s.get(metric))))
    return rows


#: What each card part measures, in words (demtui/card.py).
CARD_LABELS = {"tested": "the tested UAPs (crafted on the original model)",
               "fresh": "a fresh DF-UAP on the defended model",
               "adaptive": "the adaptive entropy-aware DF-UAP (Eq. 11) on the defended model",
               "other": "another family (SGA) on the defended model",
               "noise": "random noise of the tested threat model"}


def card_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """(part, what, attack, mean SR, per-target SR) rows of the robustness card."""
    stage = results.get("stages", {}).get("card") or {}
    metric = stage.get("metric", "sr")
    rows = []
    for part, info in (stage.get("parts") or {}).items():
        per = " / ".join(_f(m.get(metric), 2) for m in (info.get("targets") or {}).values())
        mark = " (worst)" if part == stage.get("worst") else ""
        rows.append((part + mark, CARD_LABELS.get(part, part), f"`{info.get('attack', '')}`", _f(info.get("sr")), per))
    return rows


def card_section(results: dict[str, Any]) -> list[str]:
    stage = results.get("stages", {}).get("card") or {}
    if not stage.get("parts"):
        return []
    metric = "SR" if stage.get("metric", "sr") == "sr" else "Fooling rate"
    worst = stage.get("worst")
    return ["## Robustness card (defended model)",
            f"{metric} of five attackers against the defended model, same evaluation images; per target in the "
            f"run's target order. Worst case: **{worst}** ({_f(stage.get('worst_sr'))}). "
            "`run.card` turns parts off (demtui/card.py).",
            _md_table(("Part", "Attacker", "Attack", f"{metric} (mean)", "Per target"), card_rows(results))]


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def entropy_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per (layer role, before/after) from the analyse and evaluate stages."""
    stages = results.get("stages", {})
    rows: list[tuple[str, ...]] = []
    for phase, stage in (("before", stages.get("analyse")), ("after", (stages.get("evaluate") or {}).get("entropy"))):
        for role, info in ((stage or {}).get("layers") or {}).items():
            pert, alone = list(info.get("perturbed", {}).values()), list(info.get("uap", {}).values())
            rows.append((role, f"`{info.get('layer', '')}`", phase, _f(info.get("clean"), 2),
                         _f(sum(pert) / len(pert), 2) if pert else "", _f(sum(alone) / len(alone), 2) if alone else "",
                         _f(info.get("gap"), 3)))
    return rows


def render_markdown(spec_dict: dict[str, Any], results: dict[str, Any], summary: dict[str, Any]) -> str:
    classes = results.get("stages", {}).get("baseline", {}).get("classes")
    defense = spec_dict.get("defense", {}).get("name", "none")
    parts = [
        f"# demtui run: {spec_dict['model']['name']} on {spec_dict['dataset']['name']}",
        f"Attack **{spec_dict['attack']['name']}**, defense **{defense}**, "
        f"mode {summary.get('mode', 'targeted')}, seed {spec_dict['run'].get('seed', 0)}.",
        "## Before / After", _md_table(("Metric", "Before", "After"), summary_rows(summary)),
        "## Per target", _md_table(("Target", "SR before", "SR after", "AAcc before", "AAcc after", "SR secondary"),
                                   target_rows(results, classes)),
        *card_section(results),
        "## Layer-wise entropy (Eq. 5, mean nats)",
        "Clean inputs, UAP-perturbed inputs and the UAP alone (means over targets); gap = RQ1's relative drop.",
        _md_table(("Role", "Layer", "Phase", "Clean", "Perturbed", "UAP alone", "Gap"), entropy_rows(results)),
        "## Components", _md_table(("Section", "Component", "Plugin", "Distribution", "Version", "Code"),
                                   markdown_rows(results)),
        "## Stage times (s)",
        _md_table(("Stage", "Seconds"), [(k, _f(v.get("seconds"), 1)) for k, v in results.get("stages", {}).items()]),
        "UAPs and the defended weights are in `artifacts/` (safetensors, with PNG previews);"
        " every number above is in `results.json`; `events.jsonl` has the full history.",
    ]
    return "\n\n".join(parts) + "\n"


def write_report(store: RunStore, spec: Any, summary: dict[str, Any]) -> Path:
    atomic_write_text(store.report_path, render_markdown(spec.to_dict(), store.results, summary))
    return store.report_path


def rebuild_report(run_dir: Path) -> Path:
    """Regenerate report.md from spec.toml and results.json (no torch)."""
    import tomllib

    store = RunStore(run_dir)
    spec_dict = tomllib.loads(store.spec_path.read_text(encoding="utf-8"))
    results = store.results
    summary = results.get("summary") or {}
    atomic_write_text(store.report_path, render_markdown(spec_dict, results, summary))
    return store.report_path


def summary_json(outcome: Any) -> str:
    results = outcome.results
    doc = {
        "run_dir": str(outcome.run_dir),
        "status": outcome.status,
        "summary": outcome.summary,
        "targets": {
            key: {
                "before": entry.get("metrics"),
                "after": results.get("stages", {}).get("evaluate", {}).get("targets", {}).get(key),
                "secondary": results.get("stages", {}).get("secondary", {}).get("targets", {}).get(key, {}).get("metrics"),
            }
            for key, entry in results.get("stages", {}).get("attack", {}).get("targets", {}).items()
        },
        "stage_seconds": {k: v.get("seconds") for k, v in results.get("stages", {}).items()},
    }
    from demtui.jsonsafe import dumps

    return dumps(doc, indent=2, default=float)
