"""The soft-regularizer protocol's declaration: its name, its help, its settings (with the
teacher they share), the metrics it offers sweeps, and the validation split and samples its
settings define (checked before the teacher trains)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from kdlab.config import option, same_as
from kdlab.errors import KdlabError
from kdlab.seeds import derive_seed
from kdlab.settings.metric import Metric
from kdlab.settings.study import StudyConfig

if TYPE_CHECKING:
    import torch

NAME = "soft-regularizer"
HELP = "students on a fraction of the data: hard labels, early stopping, soft targets"
_STUDENTS = {
    "soft": "soft-target student",
    "early": "hard-label student at its epoch of lowest validation loss",
    "hard": "hard-label student at its last epoch",
}
_QUANTITIES = {  # key -> (unit, higher is better, what)
    "accuracy": ("%", True, "accuracy"),
    "loss": ("nats", False, "cross-entropy"),
    "errors": ("errors", False, "errors"),
}
# per-seed metrics of a run, at its smallest fraction (a sweep sets `fractions = [3]` to pick
# one): "val_" on the validation split, the others on the test set
METRICS = tuple(
    Metric(
        f"{method}_{prefix}{key}",
        _QUANTITIES[key][0],
        _QUANTITIES[key][1],
        f"{_STUDENTS[method]}: {_QUANTITIES[key][2]} on the {'validation split' if prefix else 'test set'}",
    )
    for prefix in ("val_", "")
    for method in ("soft", "early", "hard")
    for key in ("accuracy", "loss" if prefix else "errors")
)


@dataclass(frozen=True)
class SoftRegularizerConfig(StudyConfig):
    """Settings of the soft-targets-as-regularisers study; the teacher is the mythical-digit one."""

    fractions: tuple[float, ...] = option(
        (0.5, 1.0, 3.0, 10.0, 30.0, 100.0),
        "percent of the training pool each student sees",
        gt=0,
        le=100,
        min_len=1,
        unique=True,
    )
    epochs: int = same_as(StudyConfig, "epochs", note="here the teacher's (the students' follow --steps)")
    seeds: int = same_as(StudyConfig, "seeds", 3, "each seed draws its own sample")
    student_hidden: tuple[int, ...] = same_as(StudyConfig, "student_hidden", (800, 800))
    student_dropout: float | None = same_as(StudyConfig, "student_dropout", 0.0)
    temperature: float = same_as(StudyConfig, "temperature", 8.0, "chosen by a sweep: see docs/")
    alpha: float = same_as(StudyConfig, "alpha", 0.9, "chosen by a sweep: see docs/")
    val_size: int = option(
        1000,
        "training images held out as the early-stopping validation split; no fraction draws from "
        "them (the teacher, trained on all images, has seen them)",
        ge=1,
    )
    steps: int = option(
        300, "optimiser steps per student: epochs = steps / steps per epoch, within the bounds below", ge=1
    )
    min_epochs: int = option(3, "fewest epochs of a student (the large fractions)", ge=1)
    max_epochs: int = option(60, "most epochs of a student (the small fractions)", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_epochs > self.max_epochs:
            raise KdlabError(
                f"--min-epochs ({self.min_epochs}) must not exceed --max-epochs ({self.max_epochs})"
            )

    def check_rows(self, rows: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]) -> None:
        """Also the validation split and every fraction's sample, before the teacher trains."""
        super().check_rows(rows, labels, classes)
        pool, _ = split_pool(rows, self.val_size, self.seed)
        for fraction in self.fractions:
            quotas(labels[pool], len(classes), fraction)

    def teacher_settings(self) -> StudyConfig:
        """The mythical-digit teacher's settings (trained on every training image, so shared
        through the store): `val_size` here is the students' validation split, not the teacher's."""
        shared = {f.name: getattr(self, f.name) for f in fields(StudyConfig)}
        return StudyConfig(**{**shared, "val_size": 0})

    def student_epochs(self, images: int) -> int:
        """About `steps` optimiser steps whatever the fraction, within [min_epochs, max_epochs]:
        a small sample needs many passes to converge, the whole pool only a few."""
        from kdlab.training.engine import steps_per_epoch

        epochs = math.ceil(self.steps / steps_per_epoch(images, self.batch_size))
        return min(self.max_epochs, max(self.min_epochs, epochs))


SETTINGS = SoftRegularizerConfig  # the class of its settings, for the registry


def split_pool(rows: torch.Tensor, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool the fractions draw from and the validation split, disjoint, both sorted."""
    import torch  # the rows are a tensor: torch is loaded already

    if val_size >= len(rows):
        raise KdlabError(f"val size {val_size} leaves no training images (of {len(rows)})")
    g = torch.Generator().manual_seed(derive_seed(seed, "soft-regularizer-val"))
    perm = rows[torch.randperm(len(rows), generator=g).to(rows.device)]
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def quotas(labels: torch.Tensor, num_classes: int, fraction: float) -> torch.Tensor:
    """Images per class in a `fraction` % sample of rows with `labels`: the pool's class shares."""
    import torch  # the labels are a tensor: torch is loaded already

    counts = torch.bincount(labels, minlength=num_classes).double()
    quota = torch.round(counts * fraction / 100).long()
    if bool((quota[counts > 0] < 1).any()):
        raise KdlabError(f"fraction {fraction:g}% leaves a class without images; choose a larger one")
    return quota
