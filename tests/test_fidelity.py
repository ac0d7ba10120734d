"""Issue 17: the paper's attack loss, budgets that follow each other, named recipes, repair data modes."""

from __future__ import annotations

import pytest
import torch

from demtui.plugins.attacks.df_uap import margin_loss
from demtui.registry import get_registry


def _grads(fixed: bool, targeted: bool) -> torch.Tensor:
    logits = torch.tensor([[1.0, 4.0, 2.0, 0.5]], requires_grad=True)
    label = torch.tensor([0])
    margin_loss(logits, label, targeted=targeted, kappa=10, fixed_reference=fixed).sum().backward()
    return logits.grad[0]


@pytest.mark.parametrize("targeted", [True, False])
def test_fixed_reference_margin_pushes_only_the_label_logit(targeted) -> None:
    """Authors' variant: max_{j≠t} z_j (here z_1 = 4) is a constant, so only z_t gets a gradient."""
    sign = -1.0 if targeted else 1.0  # minimising (4 − z_0) raises z_0; (z_0 − 4) lowers it
    assert _grads(True, targeted).tolist() == [sign, 0.0, 0.0, 0.0]
    # the full margin also moves the strongest rival (hand-computed: ∂/∂z_1 = ∓1)
    assert _grads(False, targeted).tolist() == [sign, -sign, 0.0, 0.0]


def test_fixed_reference_has_the_same_value_and_bound() -> None:
    logits = torch.tensor([[0.0, 20.0, 1.0], [5.0, 0.0, 1.0]])
    target = torch.tensor([1, 1])
    assert margin_loss(logits, target, targeted=True, kappa=10, fixed_reference=True).tolist() == [-10.0, 5.0]
    # clamped samples (already κ past the boundary) pull nothing, whatever the variant
    z = logits.clone().requires_grad_(True)
    margin_loss(z, target, targeted=True, kappa=10, fixed_reference=True).sum().backward()
    assert z.grad[0].tolist() == [0.0, 0.0, 0.0] and z.grad[1].tolist() == [0.0, -1.0, 0.0]


@pytest.mark.parametrize("name", ["df-uap", "adaptive-df-uap"])
def test_df_uap_defaults_to_the_authors_fixed_reference_loss(name) -> None:
    params = get_registry().get("attack", name).params
    assert params.defaults()["loss"] == "fixed-ref"
    assert params.validate({"loss": "margin"})["loss"] == "margin"


# ---------------------------------------------------------------------------------- budget coupling

def _resolve(*sets: str):
    from demtui import spec as specmod

    over = specmod.parse_set(list(sets))
    return specmod.resolve(specmod.merge(specmod.quickstart_dict(), over), get_registry())


@pytest.mark.parametrize("defense", ["democratic", "pgd-at", "trades"])
def test_training_budget_follows_the_attack_eps(defense) -> None:
    spec = _resolve(f"defense.name={defense}", "attack.eps=32/255")
    # eps_ratio 1 (the paper trains at the attack's ε); the quickstart's democratic section sets 1.6
    ratio = 1.6 if defense == "democratic" else 1.0
    assert spec.defense.params["eps"] == pytest.approx(ratio * 32 / 255) and spec.notes == []
    spec = _resolve(f"defense.name={defense}", "attack.eps=8/255", "defense.eps_ratio=1.5")
    assert spec.defense.params["eps"] == pytest.approx(12 / 255) and spec.notes == []
    assert spec.to_dict()["defense"]["eps"] == pytest.approx(12 / 255)  # spec.toml shows the resolved budget


def test_known_uap_budgets_follow_the_attack_eps_too() -> None:
    spec = _resolve("defense.name=uap-at", "attack.eps=6/255")
    assert spec.defense.params["uap_eps"] == pytest.approx(6 / 255)


def test_an_explicit_defense_eps_wins_and_a_weaker_one_warns() -> None:
    spec = _resolve("defense.name=democratic", "attack.eps=32/255", "defense.eps=16/255")
    assert spec.defense.params["eps"] == pytest.approx(16 / 255)
    (note,) = spec.notes
    assert "\n" not in note and "weaker budget than the attack" in note and "16/255" in note and "32/255" in note
    stronger = _resolve("defense.name=democratic", "attack.eps=8/255", "defense.eps=16/255")
    assert stronger.defense.params["eps"] == pytest.approx(16 / 255) and stronger.notes == []


def test_a_patch_attack_couples_to_the_papers_budget() -> None:
    spec = _resolve("attack.name=lavan", "defense.name=democratic", "defense.eps_ratio=2")
    assert spec.defense.params["eps"] == pytest.approx(20 / 255) and spec.notes == []


def test_show_documents_the_coupling_rule() -> None:
    from typer.testing import CliRunner

    from demtui.cli import app

    res = CliRunner().invoke(app, ["show", "democratic"])
    assert res.exit_code == 0 and "eps_ratio" in res.output and "attack's ε" in res.output.replace("\n", " ")


# ---------------------------------------------------------------------------------- named recipes

def test_recipes_fill_empty_values_and_explicit_values_win() -> None:
    from demtui.plugins.defenses.recipes import RECIPES

    paper = _resolve("defense.recipe=paper").defense.params
    assert {k: paper[k] for k in RECIPES["paper"]} == RECIPES["paper"] == {
        "eps_ratio": 1.0, "steps": 5, "lr": 1e-3, "epochs": 50, "refine_epochs": 10, "refine_lr": 1e-5}
    assert paper["eps"] == pytest.approx(10 / 255)  # the authors train at the attack's budget
    fast = _resolve().defense.params  # the quickstart picks the fast recipe
    assert fast["recipe"] == "fast" and fast["eps"] == pytest.approx(16 / 255) and fast["lr"] == 3e-3
    mixed = _resolve("defense.recipe=paper", "defense.epochs=3", "defense.eps=12/255").defense.params
    assert mixed["epochs"] == 3 and mixed["lr"] == 1e-3 and mixed["eps"] == pytest.approx(12 / 255)


def test_the_registry_default_recipe_is_the_papers() -> None:
    assert get_registry().get("defense", "democratic").params.defaults()["recipe"] == "paper"


def test_reproduce_paper_preset_uses_the_paper_recipe() -> None:
    from demtui.reproduce.driver import base_spec

    assert base_spec("paper")["defense"]["recipe"] == "paper"
    assert base_spec("tiny")["defense"]["recipe"] == "fast"


# ---------------------------------------------------------------------------------- repair data modes

def _seen_by_finetune(epoch_samples):
    """Which images each repair epoch used: the batch loss records them."""
    from demtui.plugins.defenses.finetune import finetune

    x = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 3, 4, 4).contiguous()
    y = torch.arange(40) % 4
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4))
    seen: list[set[int]] = []

    def loss(xb, yb):
        if not seen or len(seen[-1]) >= (epoch_samples or 40):
            seen.append(set())
        seen[-1] |= {round(float(v) * 255) for v in xb[:, 0, 0, 0]}
        return torch.nn.functional.cross_entropy(model(xb), yb), {}

    hist = finetune(model, x, y, loss, name="t", epochs=3, lr=1e-3, batch_size=4, collapse_check=False,
                    epoch_samples=epoch_samples)
    return seen, hist


def test_fixed_mode_reuses_one_subset_every_epoch() -> None:
    seen, hist = _seen_by_finetune(None)
    assert len(seen) == 3 and all(s == set(range(40)) for s in seen) and hist["samples"] == 40


def test_stream_mode_draws_fresh_images_from_the_whole_pool_each_epoch() -> None:
    seen, hist = _seen_by_finetune(8)
    assert len(seen) == 3 and all(len(s) == 8 for s in seen)  # 8 per epoch, no repeats within an epoch
    assert len(set.union(*seen)) > 8  # different images in different epochs
    assert hist["samples"] == 8 and hist["stream_pool"] == 40 and len(hist["epochs"]) == 3


def test_democratic_defaults_to_the_papers_fixed_subset() -> None:
    params = get_registry().get("defense", "democratic").params
    assert params.defaults()["subset_mode"] == "fixed" and params.validate({"subset_mode": "stream"})


@pytest.mark.parametrize("mode", ["fixed", "stream"])
def test_both_subset_modes_run_end_to_end(mode, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from demtui.cli import app

    out = tmp_path / mode
    res = CliRunner().invoke(app, [
        "run", "--headless", "--json", "--quiet", "--device", "cpu", "--out", str(out), "--targets", "1",
        "--set", "dataset.train_size=600", "--set", "dataset.test_size=100", "--set", "victim.epochs=1",
        "--set", "attack.iterations=5", "--set", "run.eval_samples=50", "--set", "run.attack_samples=50",
        "--set", "run.secondary=false", "--set", "defense.epochs=2", "--set", "defense.refine_epochs=0",
        "--set", "defense.steps=1", "--set", "defense.subset_size=32", "--set", f"defense.subset_mode={mode}",
        "--set", "defense.collapse_check=false"])  # a 1-epoch victim is near chance: not what this tests
    assert res.exit_code == 0, res.output
    defend = json.loads((out / "results.json").read_text())["stages"]["defend"]
    assert defend["subset"] == 32 and defend["subset_mode"] == mode
    assert defend["history"]["samples"] == 32
    assert defend["history"].get("stream_pool") == (600 if mode == "stream" else None)


# ---------------------------------------------------------------------------------- robustness card

CARD_RUN = ["run", "--headless", "--json", "--quiet", "--device", "cpu", "--targets", "1,2",
            "--set", "dataset.train_size=600", "--set", "dataset.test_size=100", "--set", "victim.epochs=1",
            "--set", "attack.iterations=5", "--set", "run.eval_samples=50", "--set", "run.attack_samples=50",
            "--set", "defense.epochs=1", "--set", "defense.refine_epochs=0", "--set", "defense.steps=1",
            "--set", "defense.subset_size=32", "--set", "defense.collapse_check=false"]


def _card_run(tmp_path, *extra: str):
    import json

    from typer.testing import CliRunner

    from demtui.cli import app

    out = tmp_path / "card"
    res = CliRunner().invoke(app, [*CARD_RUN, "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), out


def test_the_card_reports_five_attackers_and_names_the_worst(tmp_path) -> None:
    doc, out = _card_run(tmp_path)
    card = doc["summary"]["card"]
    assert set(card) == {"tested", "fresh", "adaptive", "other", "noise", "worst", "worst_sr"}
    assert card["worst"] in {"tested", "fresh", "adaptive", "other", "noise"}
    assert card["worst_sr"] == max(card[p] for p in ("tested", "fresh", "adaptive", "other", "noise"))
    assert card["tested"] == doc["summary"]["sr_after"]  # the tested UAPs' SR is the evaluate stage's
    assert card["fresh"] == doc["summary"]["secondary_sr"]  # a DF-UAP run's secondary stage *is* the fresh DF-UAP
    import json

    stage = json.loads((out / "results.json").read_text())["stages"]["card"]
    assert stage["parts"]["adaptive"]["attack"] == "adaptive-df-uap" and stage["parts"]["other"]["attack"] == "sga"
    assert stage["parts"]["adaptive"]["params"]["iterations"] == 5  # the run attack's budget
    assert set(stage["parts"]["noise"]["targets"]) == {"1", "2"}
    report = (out / "report.md").read_text()
    assert "## Robustness card" in report and f"Worst case: **{card['worst']}**" in report


def test_the_card_can_be_cut_down_or_turned_off(tmp_path) -> None:
    doc, _ = _card_run(tmp_path, "--set", "run.card=noise,tested", "--set", "run.secondary=false")
    assert set(doc["summary"]["card"]) == {"tested", "noise", "worst", "worst_sr"}
    doc, _ = _card_run(tmp_path / "off", "--set", "run.card=off")
    assert doc["summary"]["card"] is None and "card" not in doc["stage_seconds"]


def test_a_bad_card_part_is_a_one_sentence_error() -> None:
    from demtui.card import parts_of
    from demtui.errors import SpecError

    assert parts_of("full") == ["tested", "fresh", "adaptive", "other", "noise"] and parts_of("off") == []
    with pytest.raises(SpecError, match=r"'advers' does not exist.*adaptive"):
        parts_of("tested,advers")
