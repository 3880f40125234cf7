"""Options of `kdlab sweep` and `kdlab tune`, generated from the existing dataclasses.

The budget overrides (`--epochs`, `--seeds`, `--subset`) are the protocol's own fields with
no default, and the run options are a subset of `RunOptions`: help texts and types are
written once, where the fields are defined. The search's own settings (`TuneSettings`) live
here too, so that the command line reads every option without importing the sweeps.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any

from kdlab.config import RunOptions, check_fields, option
from kdlab.settings.metric import Metric
from kdlab.settings.study import StudyConfig

BUDGET_FIELDS = ("epochs", "seeds", "subset")
# no `fresh`: the points share their models, so retraining them per point would defeat the sweep;
# to start over, remove the sweep's output folder
SHARED_RUN_FIELDS = (
    "data_dir", "models_dir", "quiet", "device", "download", "memory_mb", "tracker", "tracking_uri"
)  # fmt: skip


def copy_fields(cls: type, names: tuple[str, ...], unset: bool) -> list[tuple[str, Any, Any]]:
    """`make_dataclass` field specs for the fields `names` of `cls`; with `unset`, every
    default is None (an override that is given or not)."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in names:
            tp = hints[f.name] | None if unset else hints[f.name]
            default = None if unset else f.default
            specs.append((f.name, tp, dataclasses.field(default=default, metadata=f.metadata)))
    return specs


Budget = make_dataclass(
    "Budget",
    copy_fields(StudyConfig, BUDGET_FIELDS, unset=True),
    frozen=True,
    namespace={
        "__doc__": "Overrides of every point's budget, to smoke-test a sweep quickly.",
        "__post_init__": check_fields,
    },
)


def budget_overrides(budget: Any) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(budget).items() if v is not None}


@dataclass(frozen=True)
class RayOptions:
    """Where and how the trials run on Ray."""

    address: str | None = option(
        None, "address of a running Ray cluster (host:port, or 'auto'); default: start Ray on this machine"
    )
    out: Path | None = option(None, "output folder of the sweep (default: runs/sweeps/<name>)")
    num_cpus: int = option(0, "CPUs of the Ray instance started on this machine (0: all)", ge=0)
    cpus_per_trial: float = option(1.0, "CPUs reserved by each trial (and its torch threads)", gt=0)
    gpus_per_trial: float = option(0.0, "GPU (fraction) reserved by each trial when GPUs are present", ge=0)
    max_retries: int = option(3, "times a trial whose worker died is run again", ge=0)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Objective(Metric):
    """A metric a trial reports on the validation split after every epoch, and the name of the
    same quantity on the test set among the protocol's metrics (for the re-validation)."""

    test: str


# the KD student without the omitted classes, on the validation split
OBJECTIVES = {
    o.name: o
    for o in (
        Objective(
            "val_omitted_after", "%", True, "on the omitted classes, after the shift", "kd_omitted_after"
        ),
        Objective("val_accuracy_after", "%", True, "overall, after the shift", "kd_accuracy_after"),
        Objective(
            "val_omitted_before", "%", True, "on the omitted classes, before the shift", "kd_omitted_before"
        ),
        Objective("val_accuracy_before", "%", True, "overall, before the shift", "kd_no_accuracy"),
    )
}


@dataclass(frozen=True)
class TuneSettings:
    """How to search: the objective, the budget, the scheduler, the re-validation."""

    objective: str = option(
        "val_omitted_after", "metric to maximise, on the validation split", choices=tuple(OBJECTIVES)
    )
    num_samples: int = option(12, "number of trials (configurations tried)", ge=1)
    time_budget_s: float = option(0.0, "stop starting trials after this many seconds (0: no limit)", ge=0)
    grace_period: int = option(1, "epochs every trial runs before ASHA may stop it", ge=1)
    reduction_factor: int = option(2, "ASHA keeps the best 1/reduction_factor of trials at each rung", ge=2)
    reeval_seeds: int = option(
        3, "seeds the winner and the default are re-evaluated on, on the test set", ge=1
    )
    search_seed: int = option(0, "seed of the TPE sampler")

    def __post_init__(self) -> None:
        check_fields(self)


TuneBudget = make_dataclass(
    "TuneBudget",
    copy_fields(TuneSettings, ("num_samples", "time_budget_s", "reeval_seeds"), unset=True),
    frozen=True,
    namespace={"__doc__": "Overrides of the search budget.", "__post_init__": check_fields},
)


SharedRunOptions = make_dataclass(
    "SharedRunOptions",
    copy_fields(RunOptions, SHARED_RUN_FIELDS, unset=False),
    frozen=True,
    namespace={
        "__doc__": "The run options every trial of a sweep shares (see `kdlab run`).",
        "__post_init__": RunOptions.__post_init__,
    },
)


def trial_options(shared: Any, ray_opts: RayOptions, out: Path, models_dir: Path) -> RunOptions:
    """The `RunOptions` of one trial: its own output folder, the sweep's model store, quiet,
    and as many torch threads as the CPUs it reserved."""
    values = {**dataclasses.asdict(shared), "out": out, "models_dir": models_dir, "quiet": True}
    return RunOptions(**values, threads=max(1, int(ray_opts.cpus_per_trial)))
