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


@hookimpl
def demtui_defenses() -> list[Defense]:
    return [
        Defense(
            name="democratic",
            summary="Democratic Training: fine-tune on low-entropy samples (Sun et al., ICLR 2025, Alg. 1–2).",
            entry="demtui.plugins.defenses.entries:democratic",
            changes="weights",
            params=schema(
                Param("eps", "float", 10 / 255, "Sample-generator budget ε (may exceed the attack's).", min=0, max=1, min_inclusive=False),
                Param("steps", "int", 5, "Generator steps m (Alg. 2).", min=1),
                Param("step_size", "float", None, "Generator step; empty = ε/4.", min=0, min_inclusive=False, nullable=True),
                Param("random_start", "bool", True, "Start from δ ~ U(−ε, ε) as the authors' code."),
                Param("alpha", "float", 0.9, "Weight α of CE on low-entropy samples (Alg. 1).", min=0, max=1),
                Param("epochs", "int", 50, "Passes over the clean subset.", min=1),
                Param("lr", "float", 1e-3, "SGD learning rate.", min=0, min_inclusive=False),
                Param("momentum", "float", 0.9, "SGD momentum.", min=0, max=1),
                Param("weight_decay", "float", 0.0, "SGD weight decay.", min=0),
                Param("batch_size", "int", 32, "Clean images per step.", min=1),
                Param("bn_mode", "choice", "train", "BatchNorm during repair: batch statistics (train, as the authors) "
                      "or frozen (eval).", choices=("train", "eval")),
                Param("refine_epochs", "int", 10, "Clean-only fine-tuning epochs after repair (authors' code).", min=0),
                Param("schedule", "choice", "constant", "Learning-rate schedule of the repair stage (the authors: constant).",
                      choices=("constant", "cosine")),
                Param("refine_lr", "float", 1e-5, "Learning rate of the clean refinement stage.", min=0, min_inclusive=False),
                Param("layer", "str", "", "Entropy layer (role or module path); empty = the run's layer."),
                Param("collapse_check", "bool", True, "Stop with a message if the model collapses to one class."),
                *SUBSET,
            ),
        ),
    ]
