"""What the protocols built on one teacher and its students share: settings, data split,
the teacher, training students per transfer set, and calibrating their omitted classes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from kdlab import KdlabError
from kdlab.calibration import STRATEGIES, accuracy_at, label_share
from kdlab.config import check_fields, cli_name, option
from kdlab.data import Dataset
from kdlab.evaluation import Calibration
from kdlab.models import FAMILIES
from kdlab.models.cnn import CIFAR10_STUDENT, CIFAR10_TEACHER
from kdlab.protocols.common import (
    Lab,
    ModelJob,
    Teacher,
    TrainedModel,
    data_identity,
    derive_seed,
    taught_by,
    train_spec,
)
from kdlab.reporting.findings import class_phrase
from kdlab.training.engine import Monitor, TrainSpec

# (teacher, student) widths of each family: the paper's MLPs, and the CNNs sized for CIFAR-10
DEFAULT_WIDTHS = {
    "mlp": ((1200, 1200), (300, 300)),
    "cnn": (CIFAR10_TEACHER[1:-1], CIFAR10_STUDENT[1:-1]),
}


@dataclass(frozen=True)
class StudyConfig:
    """Settings of a teacher and its students; the defaults are the published protocol."""

    CLASS_FIELDS: ClassVar[tuple[str, ...]] = ()  # fields naming classes (by name or index)

    dataset: str = option("mnist", "data set")
    epochs: int = option(10, "training epochs of the teacher and of every student", ge=1)
    seed: int = option(0, "seed of the teacher and of the first student seed")
    seeds: int = option(1, "students per column, with seeds seed..seed+N-1", ge=1)
    seed_list: tuple[int, ...] = option(
        (), "students per column given as an explicit list of seeds (instead of --seeds)", unique=True
    )
    batch_size: int = option(
        256, "mini-batch size of every model (chosen by measurement: see docs/performance.md)", ge=1
    )
    temperature: float = option(4.0, "distillation temperature T", gt=0)
    alpha: float = option(0.9, "weight of the soft-target term; 1 - alpha weighs the hard labels", ge=0, le=1)
    lr: float = option(1e-3, "Adam learning rate", gt=0)
    dropout: float = option(0.5, "dropout after each hidden layer, teacher and students", ge=0, lt=1)
    student_dropout: float | None = option(
        None, "the students' dropout, if not --dropout (the teacher keeps it)", ge=0, lt=1
    )
    t2: bool = option(True, "scale the soft-target term by T^2, as the paper does")
    arch: str = option(
        "auto",
        "model family: mlp, cnn, or auto (cnn for colour images, mlp otherwise)",
        choices=("auto", *FAMILIES),
    )
    teacher_hidden: tuple[int, ...] = option(
        (),
        "teacher widths: hidden layers (mlp) or conv stages (cnn); default 1200 1200 (mlp), 32 64 128 (cnn)",
        ge=1,
    )
    student_hidden: tuple[int, ...] = option(
        (),
        "student widths: hidden layers (mlp) or conv stages (cnn); default 300 300 (mlp), 8 16 32 (cnn)",
        ge=1,
    )
    bias: float = option(
        3.5, "the shift of the `fixed` calibration: added to the omitted classes' output bias"
    )
    calibration: tuple[str, ...] = option(
        ("fixed",),
        "how to choose the omitted classes' bias shift, one or more of: fixed, oracle-test, "
        "validation, prior-matching, prediction-share; the first sets the +B numbers",
        choices=STRATEGIES,
        min_len=1,
    )
    val_size: int = option(
        0,
        "training images held out as a validation split for the curves and for `validation` "
        "calibration (0: curves monitor the test set, which is never used for any choice)",
        ge=0,
    )
    subset: int = option(0, "train on only the first N training images (0: all); for smoke tests", ge=0)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.seed_list and self.seeds not in (1, len(self.seed_list)):
            raise KdlabError(
                f"--seeds {self.seeds} and --seed-list {' '.join(map(str, self.seed_list))} disagree: "
                "give a count (--seeds) or a list (--seed-list)"
            )
        if "validation" in self.calibration and self.val_size <= 0:
            raise KdlabError("validation calibration needs a validation split: set --val-size > 0")

    def resolve(self, data: Dataset) -> StudyConfig:
        """The settings made explicit for the data (classes stored by name, the model family and
        widths) and checked against it, before anything is written."""
        config = self
        for name in self.CLASS_FIELDS:  # class names or indices, stored as names
            indices = resolve_classes(getattr(config, name), data.classes, cli_name(name))
            config = replace(config, **{name: tuple(data.classes[c] for c in indices)})
        config = config.for_data(data.image_shape)
        config.check_classes(data.classes)
        rows, _ = split_rows(config.teacher_settings().for_data(data.image_shape), len(data.y_train))
        config.check_rows(rows, data.y_train, data.classes)
        return config

    def teacher_settings(self) -> StudyConfig:
        """The teacher's settings: by default the study's own (a sweep trains each distinct
        teacher once)."""
        return self

    def check_classes(self, classes: tuple[str, ...]) -> None:
        """Checks that need the data set's classes; run before anything is written."""

    def check_rows(self, rows: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]) -> None:
        """Checks that need the teacher's training rows and the labels of every training image;
        run before anything is written."""
        require_every_class(labels[rows], classes, self.subset)

    def for_data(self, image_shape: tuple[int, int, int]) -> StudyConfig:
        """The settings with the model family and default widths made explicit for the data: a
        CNN for colour images, the paper's MLPs otherwise."""
        arch = self.arch if self.arch != "auto" else ("cnn" if image_shape[0] > 1 else "mlp")
        teacher, student = DEFAULT_WIDTHS[arch]
        return replace(
            self,
            arch=arch,
            teacher_hidden=self.teacher_hidden or teacher,
            student_hidden=self.student_hidden or student,
        )

    def student_seeds(self) -> list[int]:
        """The students' seeds: the explicit --seed-list, else --seeds of them from --seed on."""
        return list(self.seed_list) or [self.seed + i for i in range(self.seeds)]


def resolve_classes(
    names: tuple[str, ...], classes: tuple[str, ...], flag: str = "classes"
) -> tuple[int, ...]:
    """Class indices for names or indices given by the user (as `flag`); an unknown class, or
    one named twice (by its index and its name), is an error."""
    given: dict[int, str] = {}
    for name in names:
        token = str(name).strip()
        if token in classes:
            index = classes.index(token)
        elif token.isdigit() and int(token) < len(classes):
            index = int(token)
        else:
            raise KdlabError(f"unknown class {token!r}; classes are {', '.join(classes)}")
        if index in given:
            raise KdlabError(f"{flag} names class {classes[index]!r} twice ({given[index]!r} and {token!r})")
        given[index] = token
    return tuple(sorted(given))


def require_every_class(labels: torch.Tensor, classes: tuple[str, ...], subset: int) -> None:
    """Training rows without an image of some class teach nothing about it, to the teacher or
    to any student (so no transfer set holds it): refused before anything trains."""
    counts = torch.bincount(labels, minlength=len(classes))
    missing = [classes[c] for c in range(len(classes)) if counts[c] == 0]
    if missing:
        rows = f"the first {subset} training images (--subset)" if subset else "the training images"
        raise KdlabError(f"{rows} hold no image of class(es) {', '.join(missing)}; choose a larger --subset")


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


def split_rows(config: StudyConfig, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training rows and (optionally) held-out validation rows of the training set."""
    if config.val_size >= n:
        raise KdlabError(f"val size {config.val_size} leaves no training images (of {n})")
    rows = torch.arange(n)
    val = None
    if config.val_size:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(config.seed, "val")))
        rows, val = perm[config.val_size :].sort().values, perm[: config.val_size].sort().values
    if config.subset > len(rows):
        after = " after --val-size" if config.val_size else ""
        raise KdlabError(
            f"--subset {config.subset} is larger than the training set ({len(rows)} images{after})"
        )
    if config.subset:
        rows = rows[: config.subset]
    return rows, val


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
