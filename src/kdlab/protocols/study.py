"""What the protocols built on one teacher and its students share: settings, data split,
the teacher, training students per transfer set, and calibrating their omitted classes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from kdlab import KdlabError
from kdlab.calibration import STRATEGIES, accuracy_at, choose_shift
from kdlab.config import RunOptions, option, to_dict
from kdlab.data import Dataset, load_dataset
from kdlab.models import FAMILIES
from kdlab.models.cnn import CIFAR10_STUDENT, CIFAR10_TEACHER
from kdlab.protocols.common import (
    ModelJob,
    TrainedModel,
    derive_seed,
    prepare_out,
    provenance,
    setup_torch,
    stack,
    train_or_load,
)
from kdlab.training.engine import TrainSpec, predict, score
from kdlab.training.store import ModelStore

# (teacher, student) widths of each family: the paper's MLPs, and the CNNs sized for CIFAR-10
DEFAULT_WIDTHS = {
    "mlp": ((1200, 1200), (300, 300)),
    "cnn": (CIFAR10_TEACHER[1:-1], CIFAR10_STUDENT[1:-1]),
}


@dataclass(frozen=True)
class StudyConfig:
    """Settings of a teacher and its students; the defaults are the published protocol."""

    dataset: str = option("mnist", "data set")
    epochs: int = option(10, "training epochs of the teacher and of every student")
    seed: int = option(0, "seed of the teacher and of the first student seed")
    seeds: tuple[int, ...] = option(
        (1,), "students per column: a count N (seeds seed..seed+N-1) or an explicit list of seeds"
    )
    batch_size: int = option(256, "mini-batch size of every model (chosen by measurement: see README)")
    temperature: float = option(4.0, "distillation temperature T")
    alpha: float = option(0.9, "weight of the soft-target term; 1 - alpha weighs the hard labels")
    lr: float = option(1e-3, "Adam learning rate")
    dropout: float = option(0.5, "dropout after each hidden layer, teacher and students")
    student_dropout: float | None = option(
        None, "the students' dropout, if not --dropout (the teacher keeps it)"
    )
    t2: bool = option(True, "scale the soft-target term by T^2, as the paper does")
    arch: str = option("auto", "model family: mlp, cnn, or auto (cnn for colour images, mlp otherwise)")
    teacher_hidden: tuple[int, ...] = option(
        (),
        "teacher widths: hidden layers (mlp) or conv stages (cnn); default 1200 1200 (mlp), 32 64 128 (cnn)",
    )
    student_hidden: tuple[int, ...] = option(
        (), "student widths: hidden layers (mlp) or conv stages (cnn); default 300 300 (mlp), 8 16 32 (cnn)"
    )
    bias: float = option(
        3.5, "the shift of the `fixed` calibration: added to the omitted classes' output bias"
    )
    calibration: tuple[str, ...] = option(
        ("fixed",),
        "how to choose the omitted classes' bias shift, one or more of: fixed, oracle-test, "
        "validation, prior-matching; the first sets the +B numbers",
    )
    val_size: int = option(
        0,
        "training images held out as a validation split for the curves and for `validation` "
        "calibration (0: curves monitor the test set, which is never used for any choice)",
    )
    subset: int = option(0, "train on only the first N training images (0: all); for smoke tests")

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, not {self.epochs}"),
            (self.temperature > 0, f"temperature must be > 0, not {self.temperature}"),
            (0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], not {self.alpha}"),
            (self.lr > 0, f"lr must be > 0, not {self.lr}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), not {self.dropout}"),
            (
                self.student_dropout is None or 0.0 <= self.student_dropout < 1.0,
                f"student dropout must be in [0, 1), not {self.student_dropout}",
            ),
            (len(self.seeds) >= 1, "seeds needs a count or a list"),
            (len(self.seeds) > 1 or self.seeds[0] >= 1, f"seeds must be >= 1, not {self.seeds[0]}"),
            (len(set(self.seeds)) == len(self.seeds), "seeds must not repeat"),
            (self.batch_size >= 1, f"batch size must be >= 1, not {self.batch_size}"),
            (self.val_size >= 0, f"val size must be >= 0, not {self.val_size}"),
            (self.subset >= 0, f"subset must be >= 0, not {self.subset}"),
            (
                all(w >= 1 for w in self.teacher_hidden + self.student_hidden),
                "hidden layer widths must be >= 1",
            ),
            (len(self.calibration) >= 1, "calibration needs at least one strategy"),
            (
                self.arch in ("auto", *FAMILIES),
                f"arch must be auto, {', '.join(FAMILIES)}, not {self.arch!r}",
            ),
        ]
        for strategy in self.calibration:
            checks.append(
                (
                    strategy in STRATEGIES,
                    f"unknown calibration {strategy!r}; choose from {', '.join(STRATEGIES)}",
                )
            )
        checks.append(
            (
                "validation" not in self.calibration or self.val_size > 0,
                "validation calibration needs a validation split: set --val-size > 0",
            )
        )
        for ok, message in checks:
            if not ok:
                raise KdlabError(message)

    def check_classes(self, classes: tuple[str, ...]) -> None:
        """Checks that need the data set's classes; run before anything is written."""

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
        if len(self.seeds) == 1:
            return [self.seed + i for i in range(self.seeds[0])]
        return list(self.seeds)


def resolve_classes(names: tuple[str, ...], classes: tuple[str, ...]) -> tuple[int, ...]:
    """Class indices for names or indices given by the user; unknown ones are an error."""
    resolved = []
    for name in names:
        token = str(name).strip()
        if token in classes:
            index = classes.index(token)
        elif token.isdigit() and int(token) < len(classes):
            index = int(token)
        else:
            raise KdlabError(f"unknown class {token!r}; classes are {', '.join(classes)}")
        if index not in resolved:
            resolved.append(index)
    return tuple(sorted(resolved))


def shift_output_bias(state: dict[str, torch.Tensor], classes: tuple[int, ...], value: float) -> dict:
    """A copy of an MLP state with `value` added to the output bias of `classes`."""
    last = max(int(k[1:]) for k in state if k.startswith("b"))
    shifted = dict(state)
    bias = state[f"b{last}"].clone()
    bias[list(classes)] += value
    shifted[f"b{last}"] = bias
    return shifted


def evaluation(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> list[dict]:
    """JSON-ready test metrics of each model in logits [K, N, C]."""
    scored = score(logits, y, num_classes)
    return [
        {
            "per_class": scored.per_class[k].tolist(),
            "accuracy": float(scored.accuracy[k]),
            "errors": int(scored.errors[k]),
            "loss": float(scored.loss[k]),
        }
        for k in range(len(logits))
    ]


def make_spec(
    config: StudyConfig, data: Dataset, hidden: tuple[int, ...], alpha: float, role: str, seed: int
) -> TrainSpec:
    """One model's training settings; `role` and `seed` pick its initialisation and data order.
    Without a soft-target term, temperature and T^2 do not matter: they are fixed, so that such
    a model's key (and the stored model) is shared by every distillation setting."""
    distils = alpha > 0
    return TrainSpec(
        sizes=(data.num_features, *hidden, len(data.classes)),
        arch=config.arch,
        dropout=config.dropout
        if role == "teacher" or config.student_dropout is None
        else config.student_dropout,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        alpha=alpha,
        temperature=config.temperature if distils else 1.0,
        t2=config.t2 and distils,
        init_seed=derive_seed(seed, f"{role}-init"),
        stream_seed=derive_seed(seed, f"{role}-stream"),
    )


@dataclass
class Study:
    """A teacher trained (or reused) on the training rows, ready to teach students."""

    config: StudyConfig
    opts: RunOptions
    out: Path
    device: torch.device
    data: Dataset
    store: ModelStore
    rows: torch.Tensor  # training rows (validation rows excluded)
    val: tuple[torch.Tensor, torch.Tensor] | None  # held-out validation split
    monitor_name: str
    rows_id: dict
    provenance: dict
    teacher: TrainedModel
    teacher_key: str
    teacher_logits: torch.Tensor  # on every training image, computed once (exact: no augmentation)
    x_test: torch.Tensor
    y_test: torch.Tensor
    teacher_test_logits: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)

    def spec(self, hidden: tuple[int, ...], alpha: float, role: str, seed: int) -> TrainSpec:
        return make_spec(self.config, self.data, hidden, alpha, role, seed)

    def monitor(self, left_out: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Validation images for the curves: the classes a student sees."""
        x_mon, y_mon = self.val if self.val is not None else (self.x_test, self.y_test)
        if not left_out:
            return x_mon, y_mon, self.monitor_name
        keep = ~torch.isin(y_mon, torch.tensor(left_out, device=y_mon.device))
        names = ", ".join(self.data.classes[c] for c in left_out)
        return x_mon[keep], y_mon[keep], f"{self.monitor_name} without class {names}"

    def students(self, left_out: tuple[int, ...], names: tuple[str, str]) -> tuple[list, list]:
        """Norm and KD students of every seed on the training rows without `left_out`, trained
        as one group; seed s of Norm and of KD share initialisation, data order and dropout."""
        y = self.data.y_train.to(self.device)
        transfer = self.rows[~torch.isin(y[self.rows], torch.tensor(left_out, device=self.device))]
        x_mon, y_mon, monitor_name = self.monitor(left_out)
        identity = {"rows": self.rows_id, "transfer_omit": list(left_out), "monitor": monitor_name}
        seeds = self.config.student_seeds()
        hidden, alpha = self.config.student_hidden, self.config.alpha
        jobs = [ModelJob(names[0], self.spec(hidden, 0.0, "student", s), identity, s) for s in seeds]
        jobs += [
            ModelJob(
                names[1], self.spec(hidden, alpha, "student", s), {**identity, "teacher": self.teacher_key}, s
            )
            for s in seeds
        ]
        models = train_or_load(
            jobs,
            self.store,
            self.opts,
            self.data.x_train.to(self.device),
            y,
            transfer,
            self.teacher_logits,
            x_mon,
            y_mon,
            self.num_classes,
            self.provenance,
            image_shape=self.data.image_shape,
        )
        return models[: len(seeds)], models[len(seeds) :]

    def logits(self, models: list[TrainedModel], x: torch.Tensor) -> torch.Tensor:
        return predict(stack(models, self.device, self.data.image_shape), x)

    def calibrate(self, models: list[TrainedModel], omit: tuple[int, ...]) -> dict[str, dict]:
        """Every requested strategy's shift per model (seed), and the accuracies it gives."""
        test_logits = self.logits(models, self.x_test)
        val_logits = self.logits(models, self.val[0]) if self.val is not None else None
        result = {}
        for strategy in self.config.calibration:
            shifts, overall, omitted = [], [], []
            for k in range(len(models)):
                val = (val_logits[k], self.val[1]) if val_logits is not None else None
                shift = choose_shift(
                    strategy,
                    omit,
                    self.config.bias,
                    (test_logits[k], self.y_test),
                    val,
                    self.teacher_test_logits,
                )
                acc, acc_omitted = accuracy_at(test_logits[k], self.y_test, omit, torch.tensor([shift]))
                shifts.append(shift)
                overall.append(100 * float(acc[0]))
                omitted.append(100 * float(acc_omitted[0]))
            result[strategy] = {"shift": shifts, "overall": overall, "omitted": omitted}
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
    if config.subset:
        rows = rows[: config.subset]
    return rows, val


def open_study(
    config: StudyConfig, opts: RunOptions, protocol: str, omit_fields: tuple[str, ...] = ()
) -> Study:
    """Load the data, claim the output folder, and train (or reuse) the teacher."""
    device = setup_torch(opts)
    out = opts.out or Path("runs") / protocol
    data = load_dataset(config.dataset, opts.data_dir, opts.download, opts.quiet)
    for name in omit_fields:  # class names or indices, stored as names
        indices = resolve_classes(getattr(config, name), data.classes)
        config = replace(config, **{name: tuple(data.classes[c] for c in indices)})
    config = config.for_data(data.image_shape)
    config.check_classes(data.classes)
    rows, val_rows = split_rows(config, len(data.x_train))
    prepare_out(out, protocol, config.dataset)
    store = ModelStore(opts.models_dir or out / "models")
    x, y = data.x_train.to(device), data.y_train.to(device)
    rows = rows.to(device)
    val = None if val_rows is None else (x[val_rows.to(device)], y[val_rows.to(device)])
    monitor_name = "test set" if val is None else "validation split"
    rows_id = {
        "data_sha256": data.hashes,
        "val_size": config.val_size,
        "subset": config.subset,
        "split_seed": config.seed,
    }
    prov = provenance(to_dict(config), data.hashes)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    teacher_job = ModelJob(
        "Teacher",
        make_spec(config, data, config.teacher_hidden, 0.0, "teacher", config.seed),
        {"rows": rows_id, "transfer_omit": [], "monitor": monitor_name},
        config.seed,
    )
    x_mon, y_mon = val if val is not None else (x_test, y_test)
    teacher = train_or_load(
        [teacher_job],
        store,
        opts,
        x,
        y,
        rows,
        None,
        x_mon,
        y_mon,
        len(data.classes),
        prov,
        image_shape=data.image_shape,
    )[0]
    teacher_net = stack([teacher], device, data.image_shape)
    return Study(
        config=config,
        opts=opts,
        out=out,
        device=device,
        data=data,
        store=store,
        rows=rows,
        val=val,
        monitor_name=monitor_name,
        rows_id=rows_id,
        provenance=prov,
        teacher=teacher,
        teacher_key=teacher_job.key,
        teacher_logits=predict(teacher_net, x)[0],
        x_test=x_test,
        y_test=y_test,
        teacher_test_logits=predict(teacher_net, x_test)[0],
    )
