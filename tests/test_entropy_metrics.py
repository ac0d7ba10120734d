"""Eq. 5 entropy and the paper's metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from demtui.entropy import entropy_gap, entropy_histogram, layer_entropy, max_entropy, tap
from demtui.errors import ModelError
from demtui.metrics import accuracy, adversarial_accuracy, delta_cacc, fooling_rate, targeted_success_rate


def test_entropy_of_uniform_activations_is_log_d() -> None:
    # Equal activations → uniform softmax over all 2·3·4 = 24 elements → H = log 24.
    act = torch.full((2, 2, 3, 4), 7.0)
    assert torch.allclose(layer_entropy(act), torch.full((2,), math.log(24)), atol=1e-6)
    assert max_entropy(24) == pytest.approx(math.log(24))


def test_entropy_two_features_hand_computed() -> None:
    # Activations (0, ln 3): softmax = (1/4, 3/4); H = −(¼ ln ¼ + ¾ ln ¾) = 0.562335…
    act = torch.tensor([[0.0, math.log(3.0)]])
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert layer_entropy(act).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.5623351446, abs=1e-9)


def test_entropy_flattens_per_sample_and_is_stable() -> None:
    # A dominant feature drives entropy to ~0; huge values must not overflow to NaN.
    act = torch.tensor([[[1e4, 0.0], [0.0, 0.0]]])
    h = layer_entropy(act)
    assert h.shape == (1,) and torch.isfinite(h).all() and h.item() < 1e-6


def test_entropy_histogram_and_gap() -> None:
    counts = entropy_histogram(torch.tensor([0.0, 0.1, 0.5, 0.99, 1.0, 2.0, -1.0]), bins=2, lo=0.0, hi=1.0)
    # [0, .5): 0, .1, and the clamped −1 → 3; [.5, 1]: .5, .99, 1.0, clamped 2.0 → 4.
    assert counts == [3, 4]
    assert entropy_gap(4.0, 3.0) == pytest.approx(0.25)
    assert entropy_gap(0.0, 1.0) == 0.0
    with pytest.raises(ValueError):
        entropy_histogram(torch.tensor([1.0]), bins=3, lo=1.0, hi=1.0)


def test_tap_captures_a_named_layer_and_rejects_unknown_ones() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    with tap(model, "0") as layer:
        model(torch.ones(5, 3))
        assert layer.entropy().shape == (5,)
    assert not model[0]._forward_hooks  # removed on exit
    with pytest.raises(ModelError, match="Did you mean '1'|does not exist"):
        tap(model, "2").__enter__()


def test_metrics_hand_computed() -> None:
    y = torch.tensor([0, 1, 2, 3, 3, 1])
    clean = torch.tensor([0, 1, 2, 3, 0, 1])  # 5/6 correct
    adv = torch.tensor([3, 3, 2, 3, 3, 0])
    assert accuracy(clean, y) == pytest.approx(5 / 6)
    assert adversarial_accuracy(adv, y) == pytest.approx(3 / 6)  # positions 2, 3, 4
    # SR for target 3 excludes the two samples of class 3: of (0, 1, 2, 1) → (3, 3, 2, 0): 2/4.
    assert targeted_success_rate(adv, y, 3) == pytest.approx(0.5)
    assert fooling_rate(clean, adv) == pytest.approx(4 / 6)  # changed at 0, 1, 4, 5
    assert delta_cacc(0.9, 0.85) == pytest.approx(-0.05)
    assert delta_cacc(None, 0.85) is None


def test_sr_is_undefined_when_all_samples_are_the_target() -> None:
    assert math.isnan(targeted_success_rate(torch.tensor([1, 1]), torch.tensor([1, 1]), 1))
    with pytest.raises(ValueError):
        accuracy(torch.tensor([1, 2]), torch.tensor([1]))
