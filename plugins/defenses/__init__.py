"""Built-in defenses. Metadata only; training code lives in sibling modules."""

from demtui.components import Defense
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

#: Every training defense picks its clean subset the same way, so comparisons are fair.
SUBSET = (
    Param("subset_fraction", "float", 0.05, "Share of the training split used (the paper: ≤ 5%).",
          min=0, max=1, min_inclusive=False),
    Param("subset_size", "int", None, "Exact number of training images (overrides the fraction).", min=1, nullable=True),
)

#: Training budgets follow the attack's ε unless set (demtui/coupling.py; docs/defenses.md).
EPS_RATIO = Param("eps_ratio", "float", 1.0, "When the budget is empty: train at eps_ratio × the attack's ε "
                  "(the paper: 1; a patch attack counts as 10/255).", min=0, min_inclusive=False)


def _eps(name: str, help: str) -> Param:
    return Param(name, "float", None, f"{help}; empty = eps_ratio × the attack's ε.", min=0, max=1,
                 min_inclusive=False, nullable=True)


#: CFN and FNS: the authors re-estimate BatchNorm statistics after inserting their layers.
RECALIBRATE_BN = Param("recalibrate_bn", "bool", True, "Re-estimate the statistics of the BatchNorm layers after "
                       "the first guard on the clean subset (the CFN authors' step); original weights stay as they are.")


def _loop(epochs: int = 50, lr: float = 1e-3, bn: bool = True, refine: bool = True) -> tuple[Param, ...]:
    """Democratic Training's training-budget knobs, shared by every fine-tuning baseline."""
    knobs = [
        Param("epochs", "int", epochs, "Passes over the clean subset.", min=1),
        Param("lr", "float", lr, "SGD learning rate.", min=0, min_inclusive=False),
        Param("momentum", "float", 0.9, "SGD momentum.", min=0, max=1),
        Param("weight_decay", "float", 0.0, "SGD weight decay.", min=0),
        Param("batch_size", "int", 32, "Clean images per step.", min=1),
    ]
    if bn:
        knobs.append(Param("bn_mode", "choice", "train", "BatchNorm during training: batch statistics (train) or "
                           "frozen (eval).", choices=("train", "eval")))
    if refine:
        knobs += [Param("refine_epochs", "int", 0, "Clean-only fine-tuning epochs afterwards (Democratic Training's "
                        "second stage; 0 = none).", min=0),
                  Param("refine_lr", "float", 1e-5, "Learning rate of the clean refinement stage.", min=0,
                        min_inclusive=False)]
    knobs.append(Param("schedule", "choice", "constant", "Learning-rate schedule of the training stage (cosine anneals "
                       "it to 0; the refinement stage stays constant).", choices=("constant", "cosine")))
    knobs.append(Param("collapse_check", "bool", True, "Stop with a message if the model collapses to one class."))
    return tuple(knobs)


def _pgd(steps: int = 5) -> tuple[Param, ...]:
    """The perturbation budget, named as Democratic Training's sample generator (m, ε, α)."""
    return (
        _eps("eps", "L∞ budget ε of the training perturbations (pixel scale)"),
        EPS_RATIO,
        Param("steps", "int", steps, "PGD steps m.", min=1),
        Param("step_size", "float", None, "PGD step; empty = ε/4 (as the sample generator).", min=0,
              min_inclusive=False, nullable=True),
        Param("random_start", "bool", True, "Start from δ ~ U(−ε, ε)."),
        Param("alpha", "float", 0.9, "Weight α of CE on perturbed samples (1−α on clean), as Alg. 1.", min=0, max=1),
    )


def _known_uaps(p: float = 0.5) -> tuple[Param, ...]:
    """Known UAPs: DF-UAPs crafted inside the defense on the repair subset (never the evaluation UAPs)."""
    return (
        Param("uap_targets", "ints", [], "Target classes of the known UAPs; empty = the run's targets "
              "(non-targeted UAPs in an untargeted run)."),
        Param("uaps_per_target", "int", 1, "Known UAPs crafted per target (different seeds).", min=1),
        _eps("uap_eps", "L∞ budget of the known UAPs"),
        EPS_RATIO,
        Param("iterations", "int", 1000, "DF-UAP iterations per known UAP (the paper's DF-UAP setting).", min=1),
        Param("p", "float", p, "Probability that a training sample gets a known UAP added.", min=0, max=1),
    )


@hookimpl
def demtui_defenses() -> list[Defense]:
    return [
        Defense(
            name="democratic",
            summary="Democratic Training: fine-tune on low-entropy samples (Sun et al., ICLR 2025, Alg. 1–2).",
            entry="demtui.plugins.defenses.entries:democratic",
            changes="weights",
            params=schema(
                Param("recipe", "choice", "paper", "Named values for every empty eps_ratio/steps/lr/epochs/"
                      "refine_*: paper (the authors': ratio 1, m 5, lr 1e-3, 50 epochs, refine 10 at 1e-5) or "
                      "fast (the quickstart's: ratio 1.6, m 10, lr 3e-3, 10 epochs, refine 2 at 1e-4).",
                      choices=("paper", "fast")),
                _eps("eps", "Sample-generator budget ε (may exceed the attack's)"),
                Param("eps_ratio", "float", None, "When eps is empty: train at eps_ratio × the attack's ε "
                      "(a patch attack counts as 10/255); empty = the recipe's.", min=0, min_inclusive=False,
                      nullable=True),
                Param("steps", "int", None, "Generator steps m (Alg. 2); empty = the recipe's.", min=1, nullable=True),
                Param("step_size", "float", None, "Generator step; empty = ε/4.", min=0, min_inclusive=False, nullable=True),
                Param("random_start", "bool", True, "Start from δ ~ U(−ε, ε) as the authors' code."),
                Param("alpha", "float", 0.9, "Weight α of CE on low-entropy samples (Alg. 1).", min=0, max=1),
                Param("epochs", "int", None, "Repair epochs; empty = the recipe's.", min=1, nullable=True),
                Param("lr", "float", None, "SGD learning rate; empty = the recipe's.", min=0, min_inclusive=False,
                      nullable=True),
                Param("momentum", "float", 0.9, "SGD momentum.", min=0, max=1),
                Param("weight_decay", "float", 0.0, "SGD weight decay.", min=0),
                Param("batch_size", "int", 32, "Clean images per step.", min=1),
                Param("bn_mode", "choice", "train", "BatchNorm during repair: batch statistics (train, as the authors) "
                      "or frozen (eval).", choices=("train", "eval")),
                Param("refine_epochs", "int", None, "Clean-only fine-tuning epochs after repair (authors' code); "
                      "empty = the recipe's.", min=0, nullable=True),
                Param("schedule", "choice", "constant", "Learning-rate schedule of the repair stage (the authors: constant).",
                      choices=("constant", "cosine")),
                Param("refine_lr", "float", None, "Learning rate of the clean refinement stage; empty = the recipe's.",
                      min=0, min_inclusive=False, nullable=True),
                Param("layer", "str", "", "Entropy layer (role or module path); empty = the run's layer."),
                Param("collapse_check", "bool", True, "Stop with a message if the model collapses to one class."),
                Param("subset_mode", "choice", "fixed", "Repair data: fixed (one subset of the training split, "
                      "reused every epoch, as the paper) or stream (each epoch a fresh shuffled draw of the same "
                      "size from the whole training split, as the authors' code).", choices=("fixed", "stream")),
                *SUBSET,
            ),
        ),
        Defense(
            name="pgd-at",
            summary="Non-targeted PGD adversarial training on the repair subset (Madry et al. 2018; Table 4).",
            entry="demtui.plugins.defenses.entries:pgd_at",
            changes="weights",
            params=schema(*_pgd(), *_loop(), *SUBSET),
        ),
        Defense(
            name="pgd-at-targeted",
            summary="Targeted PGD adversarial training toward the run's target classes (Table 4).",
            entry="demtui.plugins.defenses.entries:pgd_at_targeted",
            changes="weights",
            params=schema(
                Param("target", "int", None, "Target class of the PGD samples; empty = the run's targets.", min=0,
                      nullable=True),
                *_pgd(), *_loop(), *SUBSET,
            ),
        ),
        Defense(
            name="uap-at",
            summary="Fine-tuning with known UAPs (DF-UAPs crafted on the repair subset) added with probability p.",
            entry="demtui.plugins.defenses.entries:uap_at",
            changes="weights",
            params=schema(
                *_known_uaps(p=0.5),
                Param("alpha", "float", 0.9, "Weight α of CE on UAP samples (1−α on clean), as Alg. 1.", min=0, max=1),
                *_loop(), *SUBSET,
            ),
        ),
        Defense(
            name="trades",
            summary="TRADES: CE + β·KL(clean ‖ adversarial) robust fine-tuning (Zhang et al. 2019).",
            entry="demtui.plugins.defenses.entries:trades",
            changes="weights",
            params=schema(
                Param("beta", "float", 6.0, "Weight β of the KL (robustness) term.", min=0),
                _eps("eps", "L∞ budget ε of the KL search (pixel scale; TRADES's own value is 0.031)"),
                EPS_RATIO,
                Param("steps", "int", 10, "Steps of the KL search.", min=1),
                Param("step_size", "float", 0.007, "Step of the KL search.", min=0, min_inclusive=False),
                *_loop(), *SUBSET,
            ),
        ),
        Defense(
            name="sfr",
            summary="SFR: train regeneration units on the most UAP-sensitive early filters; original frozen.",
            entry="demtui.plugins.defenses.entries:sfr",
            changes="wrapper",
            params=schema(
                Param("layer", "str", "shallow1", "Early layer whose filters are regenerated (role or module path)."),
                Param("ratio", "float", 0.5, "Share of the layer's filters regenerated (Borkar et al.: 50%).", min=0,
                      max=1, min_inclusive=False),
                Param("rank", "choice", "uap", "Rank filters by activation change under the known UAPs (uap) or by "
                      "filter-weight ℓ1 norm (weight).", choices=("uap", "weight")),
                Param("hidden", "int", None, "Hidden channels of a regeneration unit; empty = as many as it regenerates.",
                      min=1, nullable=True),
                *_known_uaps(p=0.5),
                Param("alpha", "float", 0.5, "Weight of CE on UAP samples (1−α on clean).", min=0, max=1),
                *_loop(epochs=10, lr=0.01, bn=False, refine=False), *SUBSET,
            ),
        ),
        Defense(
            name="cfn",
            summary="CFN: clip per-position feature norms after residual stages (Yu et al. 2021); no training.",
            entry="demtui.plugins.defenses.entries:cfn",
            changes="wrapper",
            params=schema(
                Param("layers", "str", "", "Comma-separated module paths; empty = the residual stages "
                      "(layer1..4 / block1..3)."),
                Param("clp", "float", 1.2, "Threshold: clp × the spatial mean of the channel norms.", min=0,
                      min_inclusive=False),
                RECALIBRATE_BN,
                *SUBSET,
            ),
        ),
        Defense(
            name="fns",
            summary="FNS: suppress feature norms above a threshold, exponential or Gaussian (Yu et al. 2023).",
            entry="demtui.plugins.defenses.entries:fns",
            changes="wrapper",
            params=schema(
                Param("layers", "str", "", "Comma-separated module paths; empty = the residual stages "
                      "(layer1..4 / block1..3)."),
                Param("clp", "float", 1.25, "Threshold: clp × the spatial mean of the channel norms.", min=0,
                      min_inclusive=False),
                Param("dr", "float", 1.5, "Decay ratio above the threshold (1 = CFN's clipping).", min=1),
                Param("variant", "choice", "exp", "Decay: exponential (FNS-E) or Gaussian (FNS-G).",
                      choices=("exp", "gauss")),
                RECALIBRATE_BN,
                *SUBSET,
            ),
        ),
        Defense(
            name="densepure",
            summary="DensePure: diffusion purification, several reverse runs, majority vote (Xiao et al. 2023).",
            entry="demtui.plugins.defenses.entries:densepure",
            changes="purifier",
            params=schema(
                Param("checkpoint", "str", "", "diffusers UNet2DModel directory or hub id (online); empty = train "
                      "a small one on the repair subset."),
                Param("sigma", "float", 0.125, "Noise level σ in pixel scale (0 = no purification).", min=0),
                Param("runs", "int", 5, "Reverse runs with different noise, majority-voted.", min=1),
                Param("reverse_steps", "int", 10, "Strided reverse steps from the noise level to 0.", min=1),
                Param("train_steps", "int", 1000, "Offline: steps training the small UNet (0 = need a checkpoint).",
                      min=0),
                Param("train_lr", "float", 1e-3, "Offline: AdamW learning rate of the UNet.", min=0,
                      min_inclusive=False),
                Param("unet_width", "int", 32, "Offline: base channels of the small UNet.", min=8),
                Param("batch_size", "int", 32, "Offline: UNet training batch.", min=1),
                Param("overhead_images", "int", 32, "Images timed for the inference-overhead figure.", min=1),
                *SUBSET,
            ),
        ),
    ]
