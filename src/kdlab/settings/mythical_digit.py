"""The mythical-digit protocol's declaration: its name, its help, its settings (whose teacher
is the study's own), and the metrics it offers sweeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kdlab.config import option
from kdlab.errors import KdlabError
from kdlab.settings.metric import Metric
from kdlab.settings.study import StudyConfig

NAME = "mythical-digit"
HELP = "teacher and four students, one class left out of the transfer set"
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
    Metric("kd_shift", "logit", None, "the shift the first calibration chose for the KD student"),
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


SETTINGS = MythicalDigitConfig  # the class of its settings, for the registry
