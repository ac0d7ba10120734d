import math

import pytest

from demtui.errors import ParamError
from demtui.params import Param, schema


def test_float_accepts_fractions_like_the_paper():
    p = Param("eps", "float", 10 / 255, "budget", min=0, max=1, min_inclusive=False)
    assert p.coerce("10/255") == pytest.approx(10 / 255)
    assert p.coerce("0.5") == 0.5


@pytest.mark.parametrize("bad", ["0", "1.5", "-1/255", "nan"])
def test_eps_outside_open_unit_interval_is_rejected(bad):
    p = Param("eps", "float", 10 / 255, "budget", min=0, max=1, min_inclusive=False)
    with pytest.raises(ParamError, match=r"eps.*\(0, 1\]"):
        p.coerce(bad)


def test_types_are_checked_with_a_sentence():
    p = Param("iterations", "int", 10, "steps", min=1)
    assert p.coerce("25") == 25
    assert p.coerce(3.0) == 3
    with pytest.raises(ParamError, match="whole number"):
        p.coerce("2.5")
    with pytest.raises(ParamError, match="whole number"):
        p.coerce(True)


def test_bool_and_choice_and_ints():
    assert Param("flip", "bool", True, "").coerce("off") is False
    c = Param("bn_mode", "choice", "train", "", choices=("train", "eval"))
    with pytest.raises(ParamError, match="Did you mean 'train'"):
        c.coerce("trian")
    assert Param("ts", "ints", [1], "").coerce("1, 2,3") == [1, 2, 3]


def test_nullable_param_takes_none():
    p = Param("subset_size", "int", None, "", min=1, nullable=True)
    assert p.coerce(None) is None
    assert p.coerce("none") is None


def test_invalid_default_is_caught_when_the_plugin_declares_it():
    with pytest.raises(ParamError, match="default of"):
        Param("eps", "float", 2.0, "", min=0, max=1)


def test_schema_unknown_param_suggests_closest():
    s = schema(Param("iterations", "int", 10, ""), Param("lr", "float", 0.1, "", min=0))
    with pytest.raises(ParamError, match="Unknown parameter 'iteration'.*Did you mean 'iterations'"):
        s.validate({"iteration": 5})
    assert s.validate({"lr": "1/10"}) == {"iterations": 10, "lr": pytest.approx(0.1)}


def test_with_defaults_overrides_and_validates():
    s = schema(Param("lr", "float", 0.1, "", min=0))
    assert s.with_defaults({"lr": 0.01}).defaults() == {"lr": 0.01}
    with pytest.raises(ParamError):
        s.with_defaults({"lr": -1})
    assert not math.isnan(s.defaults()["lr"])


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "1e999", float("inf")])
def test_non_finite_floats_are_refused_even_without_an_upper_bound(bad):
    p = Param("lr", "float", 0.01, "step size", min=0, min_inclusive=False)
    with pytest.raises(ParamError, match=r"'lr' must be a finite number, got (-?inf|nan)\."):
        p.coerce(bad)
    ints = Param("steps", "ints", [1], "steps")
    with pytest.raises(ParamError):
        ints.coerce("1,inf")
