"""The mythical-digit protocol's declaration: its name, its settings, and the metrics and the
teacher it offers sweeps."""

from __future__ import annotations

from dataclasses import dataclass

from kdlab.config import option
from kdlab.errors import KdlabError
from kdlab.settings.study import StudyConfig

NAME = "mythical-digit"
# per-seed metrics of a run, for sweeps (the first is a sweep file's default): test accuracies
# in %; "omitted" on the omitted classes' test images, pooled; "after" after the bias shift the
# first calibration strategy chose; "no" the students that never saw the omitted classes
METRICS = (
    "kd_omitted_after",
    "teacher_accuracy",
    "norm_accuracy",
    "kd_accuracy",
    "norm_no_accuracy",
    "kd_no_accuracy",
    "norm_omitted_before",
    "kd_omitted_before",
    "norm_omitted_after",
    "norm_accuracy_after",
    "kd_accuracy_after",
    "kd_shift",
)


@dataclass(frozen=True)
class MythicalDigitConfig(StudyConfig):
    """Settings of the mythical-digit experiment; the defaults are the published protocol."""

    omit: tuple[str, ...] = option(
        ("3",), "classes (indices or names) left out of the transfer set", min_len=1, unique=True
    )

    def check_classes(self, classes: tuple[str, ...]) -> None:
        if len(set(self.omit)) == len(classes):
            raise KdlabError("--omit removes every class: the transfer set would be empty")


def teacher_settings(config: MythicalDigitConfig) -> StudyConfig:
    """The teacher's settings: the study's own (the omitted classes change only the students)."""
    return config
