"""The every-digit protocol's declaration: its name, its help and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kdlab.config import option, same_as
from kdlab.settings.study import StudyConfig

NAME = "every-digit"
HELP = "the mythical-class experiment for each class in turn, calibrated"


@dataclass(frozen=True)
class EveryDigitConfig(StudyConfig):
    """Settings of the every-digit study: the published protocol, calibrated on a validation split."""

    CLASS_FIELDS: ClassVar[tuple[str, ...]] = ("classes",)

    calibration: tuple[str, ...] = same_as(
        StudyConfig,
        "calibration",
        ("validation", "fixed", "prior-matching", "oracle-test"),
        help="how to choose each omitted class's bias shift, one or more of: fixed, oracle-test, validation, "
        "prior-matching, prediction-share; the first is the table's 'after'",
    )
    val_size: int = same_as(
        StudyConfig,
        "val_size",
        5000,
        help="training images held out as the validation split for `validation` calibration and the curves",
    )
    classes: tuple[str, ...] = option(
        (), "the classes to omit in turn (indices or names; default: every class)", unique=True
    )


SETTINGS = EveryDigitConfig  # the class of its settings, for the registry
