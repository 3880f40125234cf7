"""Learning-rate schedules: a factor on every model's own learning rate, per step."""

from __future__ import annotations

import math

from kdlab.choices import SCHEDULES


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Factor at `step` of `total` steps: constant 1, or a cosine or linear decay to zero."""
    progress = step / max(total, 1)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
