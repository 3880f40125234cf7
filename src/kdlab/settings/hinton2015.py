"""The hinton2015 protocol's declaration: its name, its help and its settings, with the budgets
they scale and the classes its reduced transfer sets leave out or keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdlab.choices import MAX_TEMPERATURE, OPTIMIZERS, SCHEDULES
from kdlab.config import check_fields, option, same_as
from kdlab.errors import KdlabError
from kdlab.seeds import seeds_from
from kdlab.settings.study import StudyConfig, require_every_class

if TYPE_CHECKING:
    from kdlab.data.base import Dataset

NAME = "hinton2015"
HELP = "the paper's own MNIST numbers, side by side with kdlab's"
OMITTED = 3  # the mythical digit
KEPT = (7, 8)  # the only digits of the second reduced transfer set
# Epochs, training images and T-sweep seeds of each budget; everything else is the same in both.
# The full T-sweep trains 3 seeds per point: one student per temperature moves by tens of errors
# between seeds, more than the 30-unit curve's dip at T = 2.5-4 that the paper reports.
BUDGETS = {
    "full": {"subset": 0, "teacher_epochs": 300, "student_epochs": 100, "sweep_epochs": 60, "sweep_seeds": 3},
    "quick": {"subset": 6000, "teacher_epochs": 3, "student_epochs": 3, "sweep_epochs": 2, "sweep_seeds": 1},
}


@dataclass(frozen=True)
class Hinton2015Config:
    """Settings of the reproduction; the defaults are the paper's where it gives them."""

    budget: str = option(
        "full", "full: the real thing; quick: a minutes-long smoke version", choices=tuple(BUDGETS)
    )
    dataset: str = same_as(StudyConfig, "dataset", note="the paper's numbers are for mnist")
    seed: int = same_as(StudyConfig, "seed", note="of the teacher, the T-sweep and the first students")
    seeds: int = same_as(
        StudyConfig, "seeds", note="of the 800-800 students: each of their rows is the mean, with min and max"
    )
    batch_size: int = same_as(StudyConfig, "batch_size")
    teacher_hidden: tuple[int, ...] = same_as(StudyConfig, "teacher_hidden", (1200, 1200))
    teacher_dropout: float = option(0.5, "teacher: dropout on the hidden units", ge=0, lt=1)
    input_dropout: float = option(0.2, "teacher: dropout on the input pixels", ge=0, lt=1)
    max_norm: float = option(3.5, "teacher: max L2 norm of each unit's incoming weights (0: none)", ge=0)
    jitter: int = option(2, "teacher: random translation of its training images by up to N pixels", ge=0)
    teacher_optimizer: str = option(
        "nesterov", f"teacher optimiser: {', '.join(OPTIMIZERS)}", choices=OPTIMIZERS
    )
    teacher_lr: float = option(0.05, "teacher learning rate", gt=0)
    momentum: float = option(0.9, "momentum of sgd and nesterov (teacher or students)", ge=0, lt=1)
    schedule: str = option(
        "cosine", f"learning-rate schedule of every model: {', '.join(SCHEDULES)}", choices=SCHEDULES
    )
    student_hidden: tuple[int, ...] = same_as(StudyConfig, "student_hidden", (800, 800))
    student_optimizer: str = option("adam", f"student optimiser: {', '.join(OPTIMIZERS)}", choices=OPTIMIZERS)
    student_lr: float = option(1e-3, "student learning rate", gt=0)
    temperature: float = same_as(StudyConfig, "temperature", 20.0, "of the 800-800 students")
    alpha: float = same_as(StudyConfig, "alpha", 1.0, "here > 0 (1: soft targets only)")
    t2: bool = same_as(StudyConfig, "t2")
    jitter_transfer: bool = option(
        True,
        "jitter the distilled students' transfer set too (each moved image with the teacher's targets on it)",
    )
    sweep_temperatures: tuple[float, ...] = option(
        (1.0, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, 30.0),
        "temperatures of the T-sweep",
        gt=0,
        le=MAX_TEMPERATURE,
        min_len=2,
        unique=True,
    )
    sweep_widths: tuple[int, ...] = option(
        (300, 30), "hidden widths (both layers) of the T-sweep students", ge=1, min_len=1, unique=True
    )
    sweep_jitter: bool = option(
        False,
        "the T-sweep's distilled students see moved images too, as the 800-800 ones do with "
        "--jitter-transfer (default: the stored images, as the paper's students)",
    )
    sweep_alpha: float = option(
        0.0, "soft-target weight of the T-sweep's distilled students (0: --alpha)", ge=0, le=1
    )
    sweep_seeds: int = option(
        0,
        "seeds of the T-sweep students (from --seed on; 0: the budget's): each point is their mean, "
        "with min and max",
        ge=0,
    )
    teacher_epochs: int = option(0, "teacher epochs (0: the budget's)", ge=0)
    student_epochs: int = option(0, "epochs of the 800-800 students (0: the budget's)", ge=0)
    sweep_epochs: int = option(0, "epochs of the T-sweep students (0: the budget's)", ge=0)
    subset: int | None = same_as(StudyConfig, "subset", None, "unset: the budget's")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.alpha == 0:  # its KD students would be its hard-label student, under another name
            raise KdlabError("--alpha must be > 0 here: every student but Hard distils")
        if self.jitter_transfer and self.jitter == 0:
            raise KdlabError("--jitter-transfer needs --jitter > 0: with 0 pixels nothing moves")
        if self.sweep_jitter and not self.jitter_transfer:
            raise KdlabError("--sweep-jitter needs --jitter-transfer: the T-sweep's students take its views")

    def resolve(self, data: Dataset) -> Hinton2015Config:
        """Checks that need the data, before anything is written."""
        if len(data.classes) <= max(OMITTED, *KEPT):
            raise KdlabError(f"{self.dataset} has too few classes for this protocol")
        subset, n = self.resolved("subset"), len(data.y_train)
        if subset > n:
            raise KdlabError(f"subset {subset} is larger than the training set ({n})")
        require_every_class(data.y_train[: subset or n], data.classes, subset)
        return self

    def student_seeds(self) -> list[int]:
        """The 800-800 students' seeds: --seeds of them from --seed on."""
        return seeds_from(self.seed, self.seeds)

    def sweep_seed_list(self) -> list[int]:
        """The T-sweep students' seeds: --sweep-seeds of them from --seed on."""
        return seeds_from(self.seed, self.resolved("sweep_seeds"))

    def resolved(self, name: str) -> int:
        """An epoch count, the T-sweep's seeds or the subset: the value given, else the budget's."""
        value = getattr(self, name)
        unset = None if name == "subset" else 0
        return BUDGETS[self.budget][name] if value == unset else value


SETTINGS = Hinton2015Config  # the class of its settings, for the registry
