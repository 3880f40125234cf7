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
from dataclasses import dataclass, replace

import torch

from kdlab.protocols.common import Lab, ModelJob, taught_by
from kdlab.protocols.contract import Measured, Protocol
from kdlab.protocols.study import Study, make_spec, open_study
from kdlab.reporting import soft_regularizer as reporting
from kdlab.seeds import derive_seed
from kdlab.settings.soft_regularizer import HELP, METRICS, NAME, SoftRegularizerConfig, quotas, split_pool
from kdlab.training.engine import Monitor, steps_per_epoch
from kdlab.training.store import TrainedModel

METHODS = ("hard", "early", "soft", "soft_early")  # soft_early: soft targets, early stopping


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


PROTOCOL = Protocol(NAME, HELP, SoftRegularizerConfig, measure, reporting.analyse, reporting.render, METRICS)
