"""Built-in observers: TensorBoard, MLflow and Weights & Biases (docs/observers.md).

Metadata only; each tracker is an optional extra, imported on the observer thread at the
first event of a run that enables it.
"""

from demtui.components import ObserverSource
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

ARTIFACTS = "Upload the run's artifacts/ folder and results.json, report.md, spec.toml when the run ends."


@hookimpl
def demtui_observers() -> list[ObserverSource]:
    return [
        ObserverSource(
            name="tensorboard",
            summary="Scalars, entropy histograms, UAP images and hparams in TensorBoard (extra: tensorboard).",
            entry="demtui.plugins.observers.tensorboard_obs:make",
            extra="tensorboard",
            needs=("tensorboard",),
            params=schema(
                Param("logdir", "str", "", "Where event files go (empty: <run>/tensorboard)."),
                Param("flush_secs", "int", 10, "Seconds between flushes to disk.", min=1),
            ),
        ),
        ObserverSource(
            name="mlflow",
            summary="An MLflow run per demtui run: params, metrics with steps, artifacts (extra: mlflow).",
            entry="demtui.plugins.observers.mlflow_obs:make",
            extra="mlflow",
            needs=("mlflow",),
            params=schema(
                Param("tracking_uri", "str", "", "Tracking server or store (empty: $MLFLOW_TRACKING_URI, else a "
                      "local file store in <run>/mlruns, or <grid>/mlruns for a grid's runs)."),
                Param("experiment", "str", "demtui", "Experiment name (created when missing)."),
                Param("nested", "bool", True, "A grid's runs become nested runs of one parent run per grid folder."),
                Param("log_artifacts", "bool", True, ARTIFACTS),
            ),
        ),
        ObserverSource(
            name="wandb",
            summary="A Weights & Biases run per demtui run; offline unless a key is set (extra: wandb).",
            entry="demtui.plugins.observers.wandb_obs:make",
            extra="wandb",
            needs=("wandb",),
            params=schema(
                Param("project", "str", "demtui", "W&B project."),
                Param("entity", "str", "", "W&B entity (empty: your default)."),
                Param("mode", "choice", "auto", "auto: $WANDB_MODE if set, else online with $WANDB_API_KEY, "
                      "else offline (never blocks a run); or online, offline, disabled.",
                      choices=("auto", "online", "offline", "disabled")),
                Param("dir", "str", "", "Where W&B keeps its files (empty: the run directory)."),
                Param("group", "str", "", "Run group (empty: the grid folder's name for a grid's runs)."),
                Param("log_artifacts", "bool", True, ARTIFACTS),
            ),
        ),
    ]
