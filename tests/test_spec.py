import pytest

from demtui.config import load_config
from demtui.errors import ParamError, SpecError, UnknownComponentError
from demtui.registry import Registry
from demtui.spec import merge, parse_set, quickstart_dict, resolve


@pytest.fixture
def reg(in_tmp):
    return Registry(load_config()).load(entry_points=False)


def test_quickstart_resolves_and_round_trips_through_toml(reg):
    import tomllib

    spec = resolve(quickstart_dict(), reg)
    assert spec.model.name == "smallcnn" and spec.defense and spec.defense.name == "democratic"
    assert spec.targets == [0, 3, 5, 8]
    again = resolve(tomllib.loads(spec.to_toml()), reg)
    assert again.to_dict() == spec.to_dict()


def test_set_flags_layer_over_the_spec_with_fractions(reg):
    data = merge(quickstart_dict(), parse_set(["attack.eps=8/255", "run.seed=3", "defense.steps=4"]))
    spec = resolve(data, reg)
    assert spec.attack.params["eps"] == pytest.approx(8 / 255)
    assert spec.run["seed"] == 3 and spec.defense.params["steps"] == 4


def test_changing_a_component_name_drops_the_old_params(reg):
    data = merge(quickstart_dict(), {"model": {"name": "wrn:16-2"}})
    assert "width" not in data["model"]
    assert resolve(data, reg).model.name == "wrn:16-2"


@pytest.mark.parametrize(
    "overlay, error, message",
    [
        ({"attack": {"name": "dfuap"}}, UnknownComponentError, "Did you mean 'df-uap'"),
        ({"attack": {"eps": "0"}}, ParamError, r"\(0, 1\]"),
        ({"attack": {"eps": "1.5"}}, ParamError, r"\(0, 1\]"),
        ({"attack": {"iteratons": "5"}}, ParamError, "Did you mean 'iterations'"),
        ({"run": {"targets": []}}, SpecError, "target list is empty"),
        ({"runn": {"seed": 1}}, SpecError, "Did you mean 'run'"),
        ({"defense": {"name": "democratik"}}, UnknownComponentError, "democratic"),
    ],
)
def test_bad_input_gives_one_clear_sentence(reg, overlay, error, message):
    with pytest.raises(error, match=message):
        resolve(merge(quickstart_dict(), overlay), reg)


def test_defense_none_and_untargeted_mode(reg):
    spec = resolve(merge(quickstart_dict(), {"defense": {"name": "none"}, "run": {"mode": "untargeted"}}), reg)
    assert spec.defense is None and spec.targets == []


def test_bad_set_syntax(reg):
    with pytest.raises(SpecError, match="section.param=value"):
        parse_set(["eps=3"])


def test_unreadable_spec_files_are_one_sentence(tmp_path):
    from demtui.errors import SpecError
    from demtui.spec import read_spec_file

    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"# caf\xe9\n[run]\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        read_spec_file(latin)
    with pytest.raises(SpecError, match="is a directory"):
        read_spec_file(tmp_path)
