"""Built-in UAP attacks. Metadata only; the algorithms live in sibling modules."""

from demtui.components import Attack
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

EPS = Param("eps", "float", 10 / 255, "L∞ budget in pixel space [0,1] (fractions like 10/255 are fine).",
            min=0, max=1, min_inclusive=False)


@hookimpl
def demtui_attacks() -> list[Attack]:
    return [
        Attack(
            name="df-uap",
            summary="DF-UAP: Adam on a bounded logit loss (κ) inside the L∞ ball (Zhang et al. 2020).",
            entry="demtui.plugins.attacks.entries:df_uap",
            targeted=True,
            untargeted=True,
            params=schema(
                EPS,
                Param("iterations", "int", 1000, "Adam steps, each on a fresh batch.", min=1),
                Param("lr", "float", 0.005, "Adam learning rate.", min=0, min_inclusive=False),
                Param("kappa", "float", 10.0, "Logit-margin bound κ: clamp(max_{j≠t} z_j − z_t, min=−κ).", min=0),
                Param("batch_size", "int", 32, "Images per step.", min=1),
                Param("rho", "float", 0.0, "Adaptive entropy weight ρ of Eq. 11 (0 = plain DF-UAP).", min=0, max=1),
            ),
        ),
    ]
