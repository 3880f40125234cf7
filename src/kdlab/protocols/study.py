"""What the protocols built on one teacher and its students share (their settings are in
`kdlab.settings.study`): the data split, the teacher, training students per transfer set, and
calibrating their omitted classes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdlab.calibration import accuracy_at, label_share
from kdlab.data.base import Dataset
from kdlab.errors import KdlabError
from kdlab.evaluation import Calibration
from kdlab.protocols.common import (
    Lab,
    ModelJob,
    Teacher,
    data_identity,
    taught_by,
    train_spec,
)
from kdlab.reporting.findings import class_phrase
from kdlab.settings.study import StudyConfig, split_rows
from kdlab.training.engine import Monitor, TrainSpec
from kdlab.training.store import TrainedModel


def shift_output_bias(state: dict[str, torch.Tensor], classes: tuple[int, ...], value: float) -> dict:
    """A copy of an MLP state with `value` added to the output bias of `classes`."""
    last = max(int(k[1:]) for k in state if k.startswith("b"))
    shifted = dict(state)
    bias = state[f"b{last}"].clone()
    bias[list(classes)] += value
    shifted[f"b{last}"] = bias
    return shifted


def make_spec(
    config: StudyConfig, data: Dataset, hidden: tuple[int, ...], alpha: float, role: str, seed: int
) -> TrainSpec:
    """One model's training settings in a study; `role` and `seed` pick its initialisation
    and data order (see `train_spec`)."""
    return train_spec(
        data,
        hidden,
        role,
        seed,
        arch=config.arch,
        dropout=config.dropout
        if role == "teacher" or config.student_dropout is None
        else config.student_dropout,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        alpha=alpha,
        temperature=config.temperature,
        t2=config.t2,
    )


@dataclass
class Study:
    """A teacher trained (or reused) on the training rows, ready to teach students."""

    config: StudyConfig
    lab: Lab
    rows: torch.Tensor  # training rows (validation rows excluded)
    val: tuple[torch.Tensor, torch.Tensor] | None  # held-out validation split
    monitor_name: str
    rows_id: dict
    tutor: Teacher

    @property
    def data(self) -> Dataset:
        return self.lab.data

    @property
    def device(self) -> torch.device:
        return self.lab.device

    @property
    def x_test(self) -> torch.Tensor:
        return self.lab.x_test

    @property
    def y_test(self) -> torch.Tensor:
        return self.lab.y_test

    @property
    def provenance(self) -> dict:
        return self.lab.provenance

    @property
    def teacher(self) -> TrainedModel:
        return self.tutor.model

    @property
    def teacher_key(self) -> str:
        return self.tutor.key

    @property
    def teacher_logits(self) -> torch.Tensor:
        """On every training image, computed once (exact: no augmentation)."""
        return self.tutor.logits

    @property
    def teacher_test_logits(self) -> torch.Tensor:
        return self.tutor.test_logits

    @property
    def num_classes(self) -> int:
        return self.lab.num_classes

    def spec(self, hidden: tuple[int, ...], alpha: float, role: str, seed: int) -> TrainSpec:
        return make_spec(self.config, self.data, hidden, alpha, role, seed)

    def monitor(self, left_out: tuple[int, ...]) -> Monitor:
        """Validation images for the curves: the classes a student sees."""
        x_mon, y_mon = self.val if self.val is not None else (self.x_test, self.y_test)
        if not left_out:
            return Monitor(x_mon, y_mon, self.monitor_name)
        keep = ~torch.isin(y_mon, torch.tensor(left_out, device=y_mon.device))
        names = class_phrase([self.data.classes[c] for c in left_out])
        return Monitor(x_mon[keep], y_mon[keep], f"{self.monitor_name} without {names}")

    def transfer(self, left_out: tuple[int, ...]) -> torch.Tensor:
        """The training rows without any image of the classes `left_out`."""
        y = self.lab.y
        return self.rows[~torch.isin(y[self.rows], torch.tensor(left_out, device=self.device))]

    def students(self, left_out: tuple[int, ...], names: tuple[str, str]) -> tuple[list, list]:
        """Norm and KD students of every seed on the training rows without `left_out`, trained
        as one group; seed s of Norm and of KD share initialisation, data order and dropout."""
        monitor = self.monitor(left_out)
        identity = {"rows": self.rows_id, "transfer_omit": list(left_out), "monitor": monitor.name}
        seeds = self.config.student_seeds()
        hidden, alpha = self.config.student_hidden, self.config.alpha
        jobs = [ModelJob(names[0], self.spec(hidden, 0.0, "student", s), identity, s) for s in seeds]
        jobs += [
            ModelJob(names[1], self.spec(hidden, alpha, "student", s), taught_by(identity, self.teacher), s)
            for s in seeds
        ]
        models = self.lab.train(jobs, self.transfer(left_out), monitor, self.tutor).models
        return models[: len(seeds)], models[len(seeds) :]

    def logits(self, models: list[TrainedModel], x: torch.Tensor) -> torch.Tensor:
        return self.lab.logits(models, x)

    def calibrate(self, models: list[TrainedModel], omit: tuple[int, ...]) -> dict[str, dict]:
        """Every requested strategy's shift per model (seed), and the accuracies it gives."""
        given = Calibration(
            self.teacher_test_logits, label_share(self.lab.y[self.rows], omit), self.val, self.config.bias
        )
        result = {}
        for strategy, shifts in self.lab.calibrate(models, omit, self.config.calibration, given).items():
            if None in shifts:
                raise KdlabError("prior matching found no shift in [-100, 100]")
            scored = self.lab.evaluate(models, omit=omit, shifts=shifts)
            result[strategy] = {
                "shift": shifts,
                "overall": [100 * s.accuracy for s in scored],
                "omitted": [100 * s.omitted for s in scored],
            }
        return result

    def bias_curves(self, models: list[TrainedModel], omit: tuple[int, ...], shifts: torch.Tensor) -> dict:
        """Mean test accuracy (overall, on the omitted classes) over `models` at each shift."""
        test_logits = self.logits(models, self.x_test)
        curves = [accuracy_at(test_logits[k], self.y_test, omit, shifts) for k in range(len(models))]
        return {
            "shift": shifts.tolist(),
            "overall": (100 * torch.stack([c[0] for c in curves]).mean(0)).tolist(),
            "omitted": (100 * torch.stack([c[1] for c in curves]).mean(0)).tolist(),
        }


def open_study(lab: Lab, config: StudyConfig) -> Study:
    """The study of resolved settings on a claimed Lab: the teacher of `config.teacher_settings()`
    (another protocol's teacher, to share it) trained (or reused) on its training rows."""
    teaching = config.teacher_settings().for_data(lab.data.image_shape)
    rows, val_rows = split_rows(teaching, len(lab.x))
    rows = rows.to(lab.device)
    val = None if val_rows is None else (lab.x[val_rows.to(lab.device)], lab.y[val_rows.to(lab.device)])
    job = teacher_job(teaching, lab.data, lab.device)
    monitor_name = job.identity["monitor"]
    tutor = lab.teacher(job, rows, None if val is None else Monitor(*val))
    return Study(config, lab, rows, val, monitor_name, job.identity["rows"], tutor)


def teacher_job(config: StudyConfig, data: Dataset, device: torch.device) -> ModelJob:
    """The teacher that settings (made explicit for the data: `for_data`) ask for. Its key is
    its identity everywhere: in the model store, and for sweeps that train each distinct teacher
    once."""
    rows_id = {
        **data_identity(data, device),
        "val_size": config.val_size,
        "subset": config.subset,
        "split_seed": config.seed,
    }
    return ModelJob(
        "Teacher",
        make_spec(config, data, config.teacher_hidden, 0.0, "teacher", config.seed),
        {
            "rows": rows_id,
            "transfer_omit": [],
            "monitor": "validation split" if config.val_size else "test set",
        },
        config.seed,
    )
