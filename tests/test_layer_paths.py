"""A wrapping defense nests the original model: its layer paths gain a prefix."""

from __future__ import annotations

from torch import nn

from demtui.stages import layer_in


class Wrapper(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())


def test_a_path_of_the_model_itself_is_kept() -> None:
    assert layer_in(_net(), "1") == "1"


def test_a_wrapped_model_finds_the_nested_path() -> None:
    assert layer_in(Wrapper(_net()), "1") == "model.1"


def test_an_ambiguous_or_missing_path_is_left_for_the_attack_to_report() -> None:
    both = nn.Sequential(Wrapper(_net()), Wrapper(_net()))
    assert layer_in(both, "1") == "1"  # '0.model.1' and '1.model.1' (and '1' itself) — the exact one wins
    assert layer_in(both, "nope") == "nope"
