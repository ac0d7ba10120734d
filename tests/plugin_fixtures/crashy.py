"""A local test plugin whose components break the contract in every way demtui must catch.

Metadata only (no torch); the code is in the neighbouring module crashy_code.py, which a
single-file local plugin can import because demtui puts this folder on sys.path.
"""

from demtui.api import (Attack, DatasetSource, Defense, ModelSource, Param, Rule, hookimpl, schema,
                        subset_params)

EPS = Param("eps", "float", 10 / 255, "Budget.", min=0, max=1, min_inclusive=False)
ITERATIONS = Param("iterations", "int", 5, "Steps.", min=1)


def _attack(name: str, **kw) -> Attack:
    return Attack(name=name, summary=f"Test attack {name}.", entry=f"crashy_code:{name.replace('-', '_')}",
                  targeted=True, untargeted=True, params=schema(EPS, ITERATIONS), **kw)


@hookimpl
def demtui_attacks() -> list[Attack]:
    return [_attack("boom-attack"), _attack("loud-attack"), _attack("good-attack"), _attack("custom-loud")]


@hookimpl
def demtui_defenses() -> list[Defense]:
    return [
        Defense(name="boom-defense", summary="Raises.", entry="crashy_code:boom_defense", params=schema(*subset_params())),
        Defense(name="fragile-wrapper", summary="A wrapper whose forward fails on big batches.",
                entry="crashy_code:fragile_wrapper", changes="wrapper", rebuild="crashy_code:rebuild_fragile"),
        Defense(name="uap-echo", summary="Records what the engine gave it.", entry="crashy_code:uap_echo",
                known_uaps=True, params=schema(*subset_params(size=32))),
        Defense(name="no-rebuild", summary="A wrapper without rebuild.", entry="crashy_code:uap_echo",
                changes="wrapper"),
        Defense(name="odd-kernel", summary="Has a parameter rule.", entry="crashy_code:uap_echo",
                params=schema(Param("kernel", "int", 3, "Odd size.", min=1),
                              rules=[Rule("kernel must be odd, got {kernel}", lambda p: p["kernel"] % 2 == 1)])),
    ]


@hookimpl
def demtui_datasets() -> list[DatasetSource]:
    return [DatasetSource(name="boom-data", summary="Raises when loaded.", entry="crashy_code:boom_data")]


@hookimpl
def demtui_models() -> list[ModelSource]:
    return [ModelSource(name="boom-model", summary="Raises when built.", entry="crashy_code:boom_model")]
