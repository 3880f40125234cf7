"""Soft targets as regularisers (Hinton, Vinyals & Dean 2015, section 5).

A teacher trained on all training images (the mythical-digit teacher, reused from the store)
teaches students that see only a fraction f of the training images. At each f, every seed
draws its own class-stratified sample, nested across f, and trains two students as one
group: one on the hard labels, one on the teacher's soft targets. The hard-label student is
read twice: at its last epoch, and at its epoch of lowest validation loss (early stopping,
without training twice). The validation split is held out of the images no fraction draws
from, so no student ever trains on it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields, replace

import torch

from kdlab import KdlabError
from kdlab.config import option, same_as
from kdlab.protocols.common import Lab, ModelJob, TrainedModel, derive_seed, taught_by
from kdlab.protocols.contract import Measured, Metric, Protocol
from kdlab.protocols.study import Study, StudyConfig, make_spec, open_study
from kdlab.reporting import soft_regularizer as reporting
from kdlab.training.engine import Monitor, steps_per_epoch

METHODS = ("hard", "early", "soft", "soft_early")  # soft_early: soft targets, early stopping
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
        epochs = math.ceil(self.steps / steps_per_epoch(images, self.batch_size))
        return min(self.max_epochs, max(self.min_epochs, epochs))


def split_pool(rows: torch.Tensor, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool the fractions draw from and the validation split, disjoint, both sorted."""
    if val_size >= len(rows):
        raise KdlabError(f"val size {val_size} leaves no training images (of {len(rows)})")
    g = torch.Generator().manual_seed(derive_seed(seed, "soft-regularizer-val"))
    perm = rows[torch.randperm(len(rows), generator=g).to(rows.device)]
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def quotas(labels: torch.Tensor, num_classes: int, fraction: float) -> torch.Tensor:
    """Images per class in a `fraction` % sample of rows with `labels`: the pool's class shares."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    quota = torch.round(counts * fraction / 100).long()
    if bool((quota[counts > 0] < 1).any()):
        raise KdlabError(f"fraction {fraction:g}% leaves a class without images; choose a larger one")
    return quota


def sample_order(pool: torch.Tensor, labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """Each pool row's rank within its class in this seed's random order: the f % sample is the
    rows of rank below their class's quota, so every sample contains the smaller ones."""
    g = torch.Generator().manual_seed(derive_seed(seed, "soft-regularizer-sample"))
    order = torch.randperm(len(pool), generator=g).to(pool.device)
    order = order[torch.argsort(labels[order], stable=True)]  # by class, random within it
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(pool), device=pool.device) - starts[labels[order]]
    return rank


def fraction_rows(pool: torch.Tensor, labels: torch.Tensor, rank: torch.Tensor, quota: torch.Tensor):
    """The sample: pool rows whose rank in their class is below the class's quota (sorted)."""
    return pool[rank < quota[labels]]


def rows_hash(rows: torch.Tensor) -> str:
    return hashlib.sha256(rows.cpu().numpy().tobytes()).hexdigest()


def train_fraction(
    study: Study,
    config: SoftRegularizerConfig,
    fraction: float,
    samples: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor],
) -> list[TrainedModel]:
    """Hard- and soft-target students of every seed (seed i on samples[i]) as one group; seed i
    of both shares initialisation, data order and sample."""
    seeds = config.student_seeds()
    epochs = config.student_epochs(samples.shape[1])
    jobs = []
    for name, alpha in ((f"Hard {fraction:g}%", 0.0), (f"Soft {fraction:g}%", config.alpha)):
        for s, rows in zip(seeds, samples):
            spec = replace(
                make_spec(config, study.data, config.student_hidden, alpha, "student", s), epochs=epochs
            )
            identity = {
                "rows": study.rows_id,
                "val_size": config.val_size,
                "fraction": fraction,
                "sample_sha256": rows_hash(rows),
                "monitor": "validation split",
            }
            jobs.append(
                ModelJob(name, spec, taught_by(identity, study.teacher) if alpha > 0 else identity, s)
            )
    monitor = Monitor(*val, "validation split")
    return study.lab.train(jobs, torch.cat([samples, samples]), monitor, study.tutor, keep_best=True).models


def measure_fraction(study: Study, models: list[TrainedModel]) -> dict:
    """Per method, one value per seed: test accuracy (%), errors, the epoch read, and the
    validation accuracy and loss at that epoch."""
    n = len(models) // 2
    test = {
        "final": study.lab.evaluate(models),
        "best": study.lab.evaluate([replace(m, state=m.best) for m in models]),
    }
    out = {}
    for method, half, when in (
        ("hard", 0, "final"),
        ("early", 0, "best"),
        ("soft", 1, "final"),
        ("soft_early", 1, "best"),
    ):
        ks = range(half * n, (half + 1) * n)
        epochs = [
            m.record["best_epoch"] if when == "best" else len(m.record["history"])
            for m in (models[k] for k in ks)
        ]
        at = [models[k].record["history"][e - 1] for k, e in zip(ks, epochs)]
        out[method] = {
            "accuracy": [100 * test[when][k].accuracy for k in ks],
            "errors": [test[when][k].errors for k in ks],
            "epoch": epochs,
            "val_accuracy": [100 * h["val_acc"] for h in at],
            "val_loss": [h["val_loss"] for h in at],
        }
    return out


@dataclass
class SoftRegularizerMeasured(Measured):
    seeds: list[int]
    pool_size: int
    val_size: int
    teacher: dict  # its test accuracy and errors, and its training
    rows: list[dict]  # one per fraction: every method's numbers per seed


def measure(lab: Lab, config: SoftRegularizerConfig) -> SoftRegularizerMeasured:
    """Train (or reuse) every model: the teacher, then each fraction's students."""
    study = open_study(lab, config)
    y = study.lab.y
    pool, val_rows = split_pool(study.rows, config.val_size, config.seed)
    x_val, y_val = study.lab.x[val_rows], y[val_rows]
    labels = y[pool]
    seeds = config.student_seeds()
    ranks = [sample_order(pool, labels, study.num_classes, s) for s in seeds]
    rows, trained = [], {"Teacher": [study.teacher]}
    for fraction in sorted(config.fractions):
        quota = quotas(labels, study.num_classes, fraction)
        samples = torch.stack([fraction_rows(pool, labels, r, quota) for r in ranks])
        models = train_fraction(study, config, fraction, samples, (x_val, y_val))
        trained[f"{fraction:g}%"] = models
        n = len(seeds)
        rows.append(
            {
                "fraction": fraction,
                "images": int(samples.shape[1]),
                "per_class": quota.tolist(),
                "epochs": models[0].record["spec"]["epochs"],
                "steps": models[0].record["spec"]["epochs"]
                * steps_per_epoch(samples.shape[1], config.batch_size),
                "sample_sha256": [rows_hash(s) for s in samples],
                "methods": measure_fraction(study, models),
                "histories": {
                    "hard": [m.record["history"] for m in models[:n]],
                    "soft": [m.record["history"] for m in models[n:]],
                },
                "wall_time_s": models[0].record["group_wall_time_s"],
                "reused": all(m.reused for m in models),
            }
        )
    teacher_test = lab.evaluate([study.teacher])[0]
    teacher = {
        "accuracy": 100 * teacher_test.accuracy,
        "errors": teacher_test.errors,
        "reused": study.teacher.reused,
        "wall_time_s": study.teacher.record["group_wall_time_s"],
    }
    return SoftRegularizerMeasured(config, trained, seeds, len(pool), len(val_rows), teacher, rows)


PROTOCOL = Protocol(
    "soft-regularizer",
    "students on a fraction of the data: hard labels, early stopping, soft targets",
    SoftRegularizerConfig,
    measure,
    reporting.analyse,
    reporting.render,
    METRICS,
)
