"""Built-in UAP attacks. Metadata only (no torch): the algorithms live in sibling modules.

Defaults follow the paper and each method's public reference (see docs/attacks.md);
registry.toml repeats them under ``[defaults.attack.<name>]`` so a user can see and
override them in one place.
"""

from demtui.components import Attack
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

EPS = Param("eps", "float", 10 / 255, "L∞ budget in pixel space [0,1] (fractions like 10/255 are fine).",
            min=0, max=1, min_inclusive=False)
BATCH = Param("batch_size", "int", 32, "Images per step.", min=1)


def _step(name: str, default: float, help: str) -> Param:
    return Param(name, "float", default, help, min=0, max=1, min_inclusive=False)


def _df_uap_params(rho: float, rho_help: str):
    return schema(
        EPS,
        Param("iterations", "int", 1000, "Adam steps, each on a fresh batch.", min=1),
        Param("lr", "float", 0.005, "Adam learning rate.", min=0, min_inclusive=False),
        Param("kappa", "float", 10.0, "Logit-margin bound κ: clamp(max_{j≠t} z_j − z_t, min=−κ).", min=0),
        Param("loss", "choice", "fixed-ref", "fixed-ref: the authors' loss, max_{j≠t} z_j detached so only z_t "
              "is pushed (the paper's attack); margin: gradients through both logits (stronger).",
              choices=("fixed-ref", "margin")),
        BATCH,
        Param("rho", "float", rho, rho_help, min=0, max=1),
    )


@hookimpl
def demtui_attacks() -> list[Attack]:
    return [
        Attack(
            name="df-uap",
            summary="DF-UAP: Adam on a bounded logit loss (κ) inside the L∞ ball (Zhang et al. 2020).",
            entry="demtui.plugins.attacks.entries:df_uap",
            targeted=True,
            untargeted=True,
            params=_df_uap_params(0.0, "Adaptive entropy weight ρ of Eq. 11 (0 = plain DF-UAP)."),
        ),
        Attack(
            name="adaptive-df-uap",
            summary="Entropy-aware adaptive DF-UAP (paper Eq. 11): (1−ρ)·margin − ρ·layer entropy.",
            entry="demtui.plugins.attacks.entries:df_uap",
            targeted=True,
            untargeted=True,
            params=_df_uap_params(0.5, "Weight ρ ∈ [0, 1] of the entropy term (Eq. 11); 0 = plain DF-UAP."),
            help="Raises the run's entropy layer while attacking, to look clean to an entropy-based defense.",
        ),
        Attack(
            name="sgd-uap",
            summary="sPGD / SGD-UAP: clipped-CE sign steps on the batch-mean gradient (Shafahi; Mummadi).",
            entry="demtui.plugins.attacks.entries:sgd_uap",
            targeted=True,
            untargeted=True,
            params=schema(
                EPS,
                Param("epochs", "int", 10, "Passes over the crafting images.", min=1),
                _step("step", 0.8, "Sign-step size as a fraction of ε (reference: 0.6–0.8)."),
                Param("beta", "float", 12.0, "Clip β of mean(min(CE, β)).", min=0, min_inclusive=False),
                BATCH,
            ),
        ),
        Attack(
            name="sga",
            summary="SGA: sign steps on gradients aggregated over small inner minibatches (Liu et al. 2023).",
            entry="demtui.plugins.attacks.entries:sga",
            targeted=True,
            untargeted=True,
            params=schema(
                EPS,
                Param("epochs", "int", 10, "Passes over the crafting images.", min=1),
                Param("outer_batch", "int", 250, "Images per outer step.", min=1),
                Param("minibatch", "int", 10, "Images per inner step.", min=1),
                Param("inner_steps", "int", 4, "K: each outer batch gets K·⌈outer_batch/minibatch⌉ inner steps.",
                      min=1),
                _step("inner_step", 0.1, "Inner sign-step size as a fraction of ε."),
                _step("outer_step", 0.1, "Outer sign-step size as a fraction of ε."),
                Param("beta", "float", 9.0, "Clip β of mean(min(CE, β)).", min=0, min_inclusive=False),
            ),
        ),
        Attack(
            name="lavan",
            summary="LaVAN: a visible universal patch on ~2% of the image, fixed or random place (Karmon 2018).",
            entry="demtui.plugins.attacks.entries:lavan",
            targeted=True,
            untargeted=True,
            threat="patch",
            params=schema(
                Param("area", "float", 0.02, "Patch area as a fraction of the image (paper: 2%).",
                      min=0, max=1, min_inclusive=False),
                Param("size", "int", None, "Patch side in pixels (overrides area).", min=1, nullable=True),
                Param("location", "choice", "fixed", "fixed: one place (top/left, default the centre); "
                      "random: a new place per image.", choices=("fixed", "random")),
                Param("top", "int", None, "Row of a fixed patch's top edge (empty = centred).", min=0, nullable=True),
                Param("left", "int", None, "Column of a fixed patch's left edge (empty = centred).", min=0,
                      nullable=True),
                Param("iterations", "int", 500, "Gradient steps, each on a fresh batch.", min=1),
                Param("lr", "float", 0.05, "Step size in pixel units (gradient normalised to unit L∞).",
                      min=0, min_inclusive=False),
                Param("beta", "float", 12.0, "Clip β of the non-targeted CE.", min=0, min_inclusive=False),
                BATCH,
            ),
        ),
        Attack(
            name="gap",
            summary="GAP: a generator maps fixed noise to a UAP scaled to ε; target or least-likely (Poursaeed 2018).",
            entry="demtui.plugins.attacks.entries:gap",
            targeted=True,
            untargeted=True,
            params=schema(
                EPS,
                Param("train_steps", "int", 500, "Generator updates, each on a fresh batch.", min=1),
                Param("lr", "float", 2e-4, "Adam learning rate of the generator.", min=0, min_inclusive=False),
                Param("beta1", "float", 0.5, "Adam β1.", min=0, max=1, min_inclusive=True),
                Param("width", "int", 32, "Generator width (channels of its first layer).", min=1),
                Param("blocks", "int", 3, "Residual blocks in the generator.", min=0),
                BATCH,
            ),
        ),
        Attack(
            name="deepfool-uap",
            summary="UAP: DeepFool per image, projected to the L∞ ball, stops at a fooling rate (Moosavi 2017).",
            entry="demtui.plugins.attacks.entries:deepfool_uap",
            targeted=True,
            untargeted=True,
            params=schema(
                EPS,
                Param("fooling_target", "float", 0.8, "Stop once the crafting-set fooling rate (SR if targeted) "
                      "reaches this: 1 − δ, δ = 0.2 in the paper.", min=0, max=1, min_inclusive=False),
                Param("max_passes", "int", 10, "Hard cap on passes over the crafting images.", min=1),
                Param("max_iter", "int", 50, "Hard cap on DeepFool steps per image.", min=1),
                Param("overshoot", "float", 0.02, "DeepFool overshoot past the boundary.", min=0),
                Param("candidates", "int", 10, "Classes DeepFool considers (the clean top-K).", min=2),
            ),
        ),
    ]
