"""demtui plugin metadata: registered through the entry-point group ``demtui``.

Only plain data here (no torch), so `demtui list` stays instant; everything comes from
demtui.api, demtui's supported plugin API.
"""

from demtui.api import Attack, Defense, Param, Rule, hookimpl, schema

DEMTUI_API = 1


@hookimpl
def demtui_attacks() -> list[Attack]:
    return [Attack(
        name="fgsm-uap",
        summary="Example plugin: universal perturbation from signed batch-mean CE gradient steps.",
        entry="demtui_example.attack:fgsm_uap",
        targeted=True,
        untargeted=True,
        threat="linf",  # the engine measures every UAP it returns against params["eps"]
        params=schema(
            Param("eps", "float", 10 / 255, "L∞ budget.", min=0, max=1, min_inclusive=False),
            Param("iterations", "int", 100, "Gradient steps.", min=1),
            Param("step_size", "float", 1 / 255, "Step per iteration.", min=0, min_inclusive=False),
            Param("batch_size", "int", 64, "Images per step.", min=1),
        ),
    )]


@hookimpl
def demtui_defenses() -> list[Defense]:
    return [Defense(
        name="input-smoothing",
        summary="Example plugin: a fixed Gaussian blur in front of the classifier (no training).",
        entry="demtui_example.defense:input_smoothing",
        changes="wrapper",
        rebuild="demtui_example.defense:rebuild",  # how the engine reloads a saved run's defended model
        params=schema(
            Param("sigma", "float", 0.8, "Blur standard deviation in pixels (0 = identity).", min=0, max=10),
            Param("kernel", "int", 5, "Odd kernel size.", min=1, max=31),
            rules=[Rule("kernel must be odd so the blur stays centred, got {kernel}", lambda p: p["kernel"] % 2 == 1)],
        ),
        # no subset_params(): the blur needs no training images, and the engine passes none
    )]
