"""Scoring models on a labelled set, and choosing the omitted classes' shift: the functions
behind `Lab.evaluate` and `Lab.calibrate` (a search scores its models here mid-training)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from kdlab.calibration import accuracy_at, choose_shift
from kdlab.errors import KdlabError
from kdlab.training.engine import score


@dataclass(frozen=True)
class Score:
    """One model on one labelled set. With omitted classes, `accuracy` and `errors` are those
    after its shift (`per_class` and `loss` are the model's own), `omitted` on their images."""

    accuracy: float  # fraction correct
    errors: int
    loss: float  # mean cross-entropy
    per_class: list[float | None]  # None: the set has no image of the class
    omitted: float | None = None
    omitted_errors: int | None = None


def scores(
    logits: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    omit: tuple[int, ...] = (),
    shifts: list[float] | None = None,
) -> list[Score]:
    """Each of the models' logits [K, N, C] scored against labels [N]; with `omit`, after adding
    shifts[k] (default 0) to model k's logits of the classes `omit`."""
    scored = score(logits, y, num_classes)
    out = [
        Score(
            accuracy=float(scored.accuracy[k]),
            errors=int(scored.errors[k]),
            loss=float(scored.loss[k]),
            per_class=[None if math.isnan(v) else v for v in scored.per_class[k].tolist()],
        )
        for k in range(len(logits))
    ]
    if not omit:
        return out
    n_omitted = int(torch.isin(y, torch.tensor(omit, device=y.device)).sum())
    for k, shift in enumerate(shifts or [0.0] * len(logits)):
        at = torch.tensor([float(shift)], device=logits.device)
        overall, on_omitted = (float(a[0]) for a in accuracy_at(logits[k], y, omit, at))
        out[k] = replace(
            out[k],
            accuracy=overall,
            errors=round(len(y) * (1 - overall)),
            omitted=on_omitted,
            omitted_errors=round(n_omitted * (1 - on_omitted)),
        )
    return out


@dataclass(frozen=True)
class Calibration:
    """What the strategies may read besides a student's test logits: the teacher's test logits
    (prior-matching), the omitted classes' share of the training labels (prediction-share), a
    labelled validation split (validation) and the `fixed` shift."""

    teacher_test_logits: torch.Tensor
    train_share: float
    val: tuple[torch.Tensor, torch.Tensor] | None = None
    fixed: float = 0.0


def shift(
    strategy: str,
    omit: tuple[int, ...],
    test: tuple[torch.Tensor, torch.Tensor],
    val_logits: torch.Tensor | None,
    given: Calibration,
) -> float | None:
    """One strategy's shift for one student; None where prior matching finds none."""
    val = None if val_logits is None or given.val is None else (val_logits, given.val[1])
    try:
        return choose_shift(
            strategy, omit, given.fixed, test, val, given.teacher_test_logits, given.train_share
        )
    except KdlabError:
        if strategy != "prior-matching":
            raise
        return None


def ensemble_logits(logits: torch.Tensor, members: list[list[int]], mean: str) -> torch.Tensor:
    """Log-probabilities [E, N, C] of E ensembles, each the members `members[e]` of the models'
    logits [M, N, C]: `arithmetic`, the log of the mean of their probabilities (the paper's);
    `geometric`, the normalised mean of their log-probabilities."""
    log_p = torch.log_softmax(logits, dim=-1)
    out = []
    for chosen in members:
        group = log_p[chosen]
        if mean == "arithmetic":
            out.append(torch.logsumexp(group, dim=0) - math.log(len(chosen)))
        elif mean == "geometric":
            out.append(torch.log_softmax(group.mean(0), dim=-1))
        else:
            raise ValueError(f"unknown mean {mean!r}")
    return torch.stack(out)
