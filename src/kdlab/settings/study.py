"""Settings of the protocols built on one teacher and its students (`StudyConfig`), and the
check every one of them makes on the training rows before anything trains."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from kdlab.choices import FAMILIES, MAX_TEMPERATURE, STRATEGIES
from kdlab.config import check_fields, cli_name, option
from kdlab.errors import KdlabError
from kdlab.seeds import derive_seed, seeds_from

if TYPE_CHECKING:
    import torch

    from kdlab.data.base import Dataset

# (teacher, student) widths of each family: the paper's MLPs, and CNNs sized for CIFAR-10
# (bench/bench_cnn.py): the teacher, 94.5k parameters, is about 1.6x faster per epoch on a 2-core
# CPU than 64-128-256 (373k); the student, 6.4k parameters, is 15x smaller than the teacher and
# about 3x faster per epoch than 16-32-64 (24k)
DEFAULT_WIDTHS = {"mlp": ((1200, 1200), (300, 300)), "cnn": ((32, 64, 128), (8, 16, 32))}


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
    temperature: float = option(4.0, "distillation temperature T", gt=0, le=MAX_TEMPERATURE)
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
        return list(self.seed_list) or seeds_from(self.seed, self.seeds)


def require_every_class(labels: torch.Tensor, classes: tuple[str, ...], subset: int) -> None:
    """Training rows without an image of some class teach nothing about it, to the teacher or
    to any student (so no transfer set holds it): refused before anything trains."""
    import torch  # the labels are a tensor: torch is loaded already

    counts = torch.bincount(labels, minlength=len(classes))
    missing = [classes[c] for c in range(len(classes)) if counts[c] == 0]
    if missing:
        rows = f"the first {subset} training images (--subset)" if subset else "the training images"
        raise KdlabError(f"{rows} hold no image of class(es) {', '.join(missing)}; choose a larger --subset")


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


def split_rows(config: StudyConfig, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training rows and (optionally) held-out validation rows of the training set."""
    import torch  # called once the data are loaded: torch is loaded already

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
