"""The mythical-digit experiment (Hinton, Vinyals & Dean 2015, section 3).

A teacher learns all classes. Students learn from hard labels ("Norm") or by distillation
("KD"), once on all training data and once on a transfer set with every example of the
omitted classes removed ("No3"). Raising the omitted classes' output biases afterwards
("+B") shows how much the KD student learned about a class it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from kdlab import KdlabError
from kdlab.config import option
from kdlab.evaluation import Score
from kdlab.protocols.common import Lab
from kdlab.protocols.contract import Measured, Metric, Protocol
from kdlab.protocols.study import StudyConfig, open_study, shift_output_bias
from kdlab.reporting import mythical_digit as reporting

_PCT = "%"
# per-seed metrics of a run, for sweeps (the first is a sweep file's default): test accuracies
# in %; "omitted" on the omitted classes' test images, pooled; "after" after the bias shift the
# first calibration strategy chose; "no" the students that never saw the omitted classes
METRICS = (
    Metric(
        "kd_omitted_after", _PCT, True, "KD student without the omitted classes, on them, after the shift"
    ),
    Metric("teacher_accuracy", _PCT, True, "the teacher's test accuracy (the same for every seed)"),
    Metric("norm_accuracy", _PCT, True, "hard-label student on all data"),
    Metric("kd_accuracy", _PCT, True, "distilled student on all data"),
    Metric("norm_no_accuracy", _PCT, True, "hard-label student without the omitted classes"),
    Metric("kd_no_accuracy", _PCT, True, "distilled student without the omitted classes"),
    Metric("norm_omitted_before", _PCT, True, "hard-label student without them, on them, before the shift"),
    Metric("kd_omitted_before", _PCT, True, "KD student without them, on them, before the shift"),
    Metric("norm_omitted_after", _PCT, True, "hard-label student without them, on them, after the shift"),
    Metric("norm_accuracy_after", _PCT, True, "hard-label student without them, overall, after the shift"),
    Metric("kd_accuracy_after", _PCT, True, "KD student without them, overall, after the shift"),
    Metric("kd_shift", "logit", False, "the shift the first calibration chose for the KD student"),
)


@dataclass(frozen=True)
class MythicalDigitConfig(StudyConfig):
    """Settings of the mythical-digit experiment; the defaults are the published protocol."""

    CLASS_FIELDS: ClassVar[tuple[str, ...]] = ("omit",)

    omit: tuple[str, ...] = option(
        ("3",), "classes (indices or names) left out of the transfer set", min_len=1, unique=True
    )

    def check_classes(self, classes: tuple[str, ...]) -> None:
        if len(set(self.omit)) == len(classes):
            raise KdlabError("--omit removes every class: the transfer set would be empty")


@dataclass(frozen=True)
class Columns:
    """The seven columns of the table, by role: the omitted classes' tag names the last four."""

    tag: str  # e.g. "No3"
    teacher: str = "Teacher"
    norm: str = "Norm"
    kd: str = "KD"

    @classmethod
    def of(cls, omit_names: list[str]) -> Columns:
        return cls("No" + ",".join(omit_names))

    @property
    def norm_no(self) -> str:
        return f"Norm {self.tag}"

    @property
    def kd_no(self) -> str:
        return f"KD {self.tag}"

    @property
    def norm_b(self) -> str:
        return f"Norm {self.tag}+B"

    @property
    def kd_b(self) -> str:
        return f"KD {self.tag}+B"

    @property
    def students(self) -> list[str]:
        """The trained students (the +B columns are two of them shifted)."""
        return [self.norm, self.kd, self.norm_no, self.kd_no]

    @property
    def all(self) -> list[str]:
        return [self.teacher, *self.students, self.norm_b, self.kd_b]


def columns(omit_names: list[str]) -> list[str]:
    return Columns.of(omit_names).all


@dataclass
class MythicalDigitMeasured(Measured):
    columns: Columns
    classes: tuple[str, ...]
    omit: tuple[int, ...]
    evaluations: dict[str, list[Score]]  # per column, one test score per seed
    calibration: dict[str, dict]  # per No-omit column, every strategy's shifts and accuracies
    bias_curves: dict[str, dict]
    test_counts: list[int]

    def trained(self) -> dict[str, list]:
        return {name: self.models[name] for name in [self.columns.teacher, *self.columns.students]}


def measure(lab: Lab, config: MythicalDigitConfig) -> MythicalDigitMeasured:
    """Train (or reuse) the teacher and the students of every seed, evaluate the seven columns."""
    study = open_study(lab, config)
    classes = study.data.classes
    omit = tuple(classes.index(name) for name in config.omit)
    cols = Columns.of(list(config.omit))
    trained = {cols.teacher: [study.teacher]}
    trained[cols.norm], trained[cols.kd] = study.students((), (cols.norm, cols.kd))
    trained[cols.norm_no], trained[cols.kd_no] = study.students(omit, (cols.norm_no, cols.kd_no))

    # +B: the No-omit students with the omitted classes' output biases raised by the shift
    # the first calibration strategy chose for each of them
    calibration = {col: study.calibrate(trained[col], omit) for col in (cols.norm_no, cols.kd_no)}
    first = config.calibration[0]
    for src, dst in ((cols.norm_no, cols.norm_b), (cols.kd_no, cols.kd_b)):
        shifts = calibration[src][first]["shift"]
        trained[dst] = [
            replace(m, state=shift_output_bias(m.state, omit, s)) for m, s in zip(trained[src], shifts)
        ]

    evaluations = {cols.teacher: lab.evaluate([study.teacher])}
    rest = cols.all[1:]
    scored = lab.evaluate([m for c in rest for m in trained[c]])
    for c in rest:
        evaluations[c], scored = scored[: len(trained[c])], scored[len(trained[c]) :]
    grid = torch.linspace(-2.0, 12.0, 141)
    curves = {col: study.bias_curves(trained[col], omit, grid) for col in (cols.norm_no, cols.kd_no)}
    return MythicalDigitMeasured(
        settings=config,
        models=trained,
        columns=cols,
        classes=classes,
        omit=omit,
        evaluations=evaluations,
        calibration=calibration,
        bias_curves=curves,
        test_counts=torch.bincount(study.y_test, minlength=len(classes)).tolist(),
    )


PROTOCOL = Protocol(
    "mythical-digit",
    "teacher and four students, one class left out of the transfer set",
    MythicalDigitConfig,
    measure,
    reporting.analyse,
    reporting.render,
    METRICS,
)
