"""The ensemble protocol's declaration: its name, its help, its settings with the budgets they
scale, and the per-seed metrics it offers sweeps (torch-free: the command line reads it)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kdlab.choices import MAX_TEMPERATURE, OPTIMIZERS
from kdlab.config import check_fields, option, same_as
from kdlab.errors import KdlabError
from kdlab.seeds import seeds_from
from kdlab.settings.hinton2015 import Hinton2015Config
from kdlab.settings.metric import Metric
from kdlab.settings.study import StudyConfig, require_every_class

if TYPE_CHECKING:
    from kdlab.data.base import Dataset

NAME = "ensemble"
HELP = "distil an ensemble of N models into one (the paper's section 4), against one member"
# Epochs, training images and validation split of each budget; everything else is the same.
BUDGETS = {
    "full": {"subset": 0, "val_size": 5000, "member_epochs": 12, "student_epochs": 12},
    "quick": {"subset": 4000, "val_size": 1000, "member_epochs": 15, "student_epochs": 8},
}
# the members' (and students') default widths: 800-800 is the paper's MNIST student, which ten
# times over still trains in the full budget's half hour per data set on 2 cores
WIDTHS = {"mlp": (800, 800), "cnn": (32, 64, 128)}
MIN_VAL = 500  # fewest validation images that tell candidates apart (one error: 0.2 points)
STUDENT_JITTER = ("stored", "consistent", "none")
_STUDENTS = {
    "distilled": "student distilled from the ensemble",
    "one_member": "student distilled from one member (the control)",
    "hard": "student trained on hard labels alone",
}
# per-seed metrics (per student seed, on the test set); `recovered` is each seed's fraction of
# the ensemble's gain over the mean member
METRICS = (
    *(Metric(f"{k}_accuracy", "%", True, f"{what}: test accuracy") for k, what in _STUDENTS.items()),
    *(Metric(f"{k}_errors", "errors", False, f"{what}: test errors") for k, what in _STUDENTS.items()),
    Metric(
        "recovered",
        "fraction",
        True,
        "(distilled - mean member) / (ensemble - mean member) on test accuracy, per student seed",
    ),
)


@dataclass(frozen=True)
class EnsembleConfig:
    """Settings of the ensemble-distillation study. Members and students share one recipe
    (widths aside, for compression): a hard-label student is a member under another seed, and
    the targets are the only difference left."""

    budget: str = same_as(Hinton2015Config, "budget")
    dataset: str = same_as(StudyConfig, "dataset")
    members: int = option(10, "models in the ensemble, each its own initialisation and data order", ge=2)
    seed: int = option(0, "seed of the members, the validation split and the first student")
    seeds: int = option(3, "students per row, with seeds seed..seed+N-1", ge=1)
    arch: str = same_as(StudyConfig, "arch")
    hidden: tuple[int, ...] = option(
        (),
        "member widths: hidden layers (mlp) or conv stages (cnn); default 800 800 (mlp), 32 64 128 (cnn)",
        ge=1,
    )
    student_hidden: tuple[int, ...] = option(
        (), "student widths (default: the members'; narrower ones compress the ensemble)", ge=1
    )
    dropout: float = same_as(
        Hinton2015Config, "teacher_dropout", 0.2, help="dropout on the hidden units of every model"
    )
    input_dropout: float = same_as(
        Hinton2015Config, "input_dropout", 0.0, help="dropout on the input pixels of every model"
    )
    max_norm: float = same_as(
        Hinton2015Config,
        "max_norm",
        0.0,
        help="max L2 norm of each unit's incoming weights of every model (0: none)",
    )
    jitter: int = same_as(
        Hinton2015Config,
        "jitter",
        help="random translation of every model's training images by up to N pixels",
    )
    student_jitter: str = option(
        "consistent",
        "the students' jitter: consistent (the members' soft targets of the moved image itself, "
        "computed once for every shift), stored (moved images, each with the soft targets of the "
        "image it came from), none (the paper's transfer set of unmoved images; the students then "
        "train without the members' jitter)",
        choices=STUDENT_JITTER,
    )
    optimizer: str = option("adam", f"optimiser of every model: {', '.join(OPTIMIZERS)}", choices=OPTIMIZERS)
    lr: float = same_as(StudyConfig, "lr", help="learning rate of every model")
    momentum: float = same_as(Hinton2015Config, "momentum", help="momentum of sgd and nesterov")
    schedule: str = same_as(Hinton2015Config, "schedule")
    batch_size: int = same_as(StudyConfig, "batch_size")
    temperatures: tuple[float, ...] = option(
        (2.0, 4.0),
        "temperatures the validation split chooses among",
        gt=0,
        le=MAX_TEMPERATURE,
        min_len=1,
        unique=True,
    )
    alphas: tuple[float, ...] = option(
        (0.5, 1.0),
        "soft-target weights the validation split chooses among (1 - alpha weighs the hard labels)",
        gt=0,
        le=1,
        min_len=1,
        unique=True,
    )
    t2: bool = same_as(StudyConfig, "t2")
    val_size: int | None = option(
        None,
        "training images held out as the validation split that chooses T and alpha and draws the "
        "curves (no model trains on them; unset: the budget's)",
        ge=0,
    )
    member_epochs: int = option(0, "epochs of every member (0: the budget's)", ge=0)
    student_epochs: int = option(0, "epochs of every student (0: the budget's)", ge=0)
    subset: int | None = same_as(StudyConfig, "subset", None, "unset: the budget's")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.student_jitter != "none" and self.jitter == 0:
            raise KdlabError(
                "--student-jitter needs --jitter > 0: 0 pixels move nothing (or say --student-jitter none)"
            )
        candidates = len(self.temperatures) * len(self.alphas)
        val = self.resolved("val_size")
        if candidates > 1 and val < MIN_VAL:
            raise KdlabError(
                f"--val-size {val} is too small to choose among {candidates} (T, alpha) candidates: "
                f"one error moves its accuracy by {100 / max(val, 1):.2g} points; give at least {MIN_VAL}"
            )

    def resolved(self, name: str) -> int:
        """An epoch count, the subset or the validation split: the value given, else the budget's."""
        value = getattr(self, name)
        unset = None if name in ("subset", "val_size") else 0
        return BUDGETS[self.budget][name] if value == unset else value

    def resolve(self, data: Dataset) -> EnsembleConfig:
        """The model family and widths made explicit for the data, and the split checked: all
        before anything is written."""
        arch = self.arch if self.arch != "auto" else ("cnn" if data.image_shape[0] > 1 else "mlp")
        hidden = self.hidden or WIDTHS[arch]
        config = replace(self, arch=arch, hidden=hidden, student_hidden=self.student_hidden or hidden)
        n = config.resolved("subset") or len(data.y_train)
        if n > len(data.y_train):
            raise KdlabError(f"--subset {n} is larger than the training set ({len(data.y_train)})")
        if config.resolved("val_size") >= n:
            raise KdlabError(f"--val-size {config.resolved('val_size')} leaves no training images (of {n})")
        require_every_class(data.y_train[:n], data.classes, config.resolved("subset"))
        return config

    def student_seeds(self) -> list[int]:
        """The students' seeds: --seeds of them from --seed on."""
        return seeds_from(self.seed, self.seeds)

    def ensemble_sizes(self) -> list[int]:
        """The ensemble sizes of the table: 1, 2, 5 and N (those up to N)."""
        return sorted({k for k in (1, 2, 5) if k < self.members} | {self.members})


SETTINGS = EnsembleConfig  # the class of its settings, for the registry
