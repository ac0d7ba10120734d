"""Built-in executors: where runs execute (docs/scale.md). Metadata only; code is lazy."""

from demtui.components import ExecutorSource
from demtui.hookspecs import hookimpl
from demtui.params import Param, schema

RETRIES = "Times a run whose worker died (killed, node lost) is restarted; it resumes its finished stages."


@hookimpl
def demtui_executors() -> list[ExecutorSource]:
    return [
        ExecutorSource(
            name="inline",
            summary="In this process, one run after another, with the live progress view (the default).",
            entry="demtui.plugins.executors.entries:inline",
        ),
        ExecutorSource(
            name="local",
            summary="A process per run on this host, with slots per device (--jobs, --devices).",
            entry="demtui.plugins.executors.entries:local",
            params=schema(
                Param("jobs", "int", 0, "Most runs at once (0: one per device slot).", min=0),
                Param("devices", "str", "", "Devices to spread runs over, e.g. cuda:0,cuda:1 "
                      "(empty: every visible GPU, else cpu)."),
                Param("per_device", "int", 0, "Runs sharing one device (0: jobs spread evenly, at least 1).", min=0),
                Param("max_retries", "int", 1, RETRIES, min=0),
            ),
        ),
        ExecutorSource(
            name="ray",
            summary="A Ray task per run with GPU/CPU resources, on a local Ray or a cluster (extra: ray).",
            entry="demtui.plugins.executors.entries:ray",
            extra="ray",
            params=schema(
                Param("address", "str", "", "Ray address: empty starts a local Ray here, 'auto' joins this "
                      "host's cluster, ray://HOST:10001 a remote one."),
                Param("num_cpus", "float", 1.0, "CPUs each run reserves.", min=0),
                Param("num_gpus", "float", None, "GPUs each run reserves (empty: 1 when the cluster has GPUs, "
                      "else 0).", min=0, nullable=True),
                Param("max_retries", "int", 2, RETRIES, min=0),
                Param("local_cpus", "int", 0, "CPUs of a local Ray started here (0: all of this host's).", min=0),
                Param("check_shared", "bool", True, "Before any run, check that every node sees --out."),
            ),
        ),
        ExecutorSource(
            name="slurm",
            summary="A SLURM job per run through submitit (extra: slurm); cluster=local runs them here.",
            entry="demtui.plugins.executors.entries:slurm",
            extra="slurm",
            params=schema(
                Param("partition", "str", "", "SLURM partition (empty: the cluster's default)."),
                Param("time", "int", 120, "Time limit per run in minutes.", min=1),
                Param("gpus", "int", 1, "GPUs per run.", min=0),
                Param("cpus", "int", 4, "CPUs per run.", min=1),
                Param("mem_gb", "float", 0.0, "Memory per run in GB (0: the partition's default).", min=0),
                Param("account", "str", "", "SLURM account to charge."),
                Param("qos", "str", "", "SLURM quality of service."),
                Param("constraint", "str", "", "SLURM node constraint, e.g. a GPU model."),
                Param("folder", "str", "", "Where submitit keeps job scripts and logs (empty: <out>/.submitit); "
                      "must be shared with the compute nodes."),
                Param("cluster", "choice", "auto", "auto (SLURM when sbatch exists), slurm, or local (the same "
                      "jobs as local processes, no SLURM).", choices=("auto", "slurm", "local")),
                Param("max_retries", "int", 1, RETRIES, min=0),
            ),
        ),
    ]
