"""Choosing the output-bias shift of classes a student never saw.

A shift d added to the output bias of the omitted classes adds d to their logits. For one
image, the prediction can only switch once as d grows: from the best non-omitted class to
the best omitted class, when d passes t = max(other logits) - max(omitted logits). So the
accuracy as a function of d is a step function whose steps sit at these thresholds, and its
maximum is found exactly by sorting them (no grid).

Strategies (each returns one shift for all omitted classes):
- fixed: a given value (the paper's +3.5).
- oracle-test: the shift that maximises overall test accuracy. The paper's own procedure; it
  looks at test labels, so its numbers are optimistic.
- validation: the same maximisation on a labelled validation split held out of the
  training set (it may contain the omitted classes: this tunes one number, not weights).
- prior-matching: no labels at all. The shift is chosen so that the student's mean
  predicted probability of the omitted classes on the unlabelled test images equals the
  teacher's mean probability of them on the same images. The EM prior adjustment of
  Saerens et al. (2002) cannot start here, since the student's training prior for an
  omitted class is zero; the teacher, trained on every class, gives the expected prior.
- prediction-share: no test labels either. The shift is chosen so that the share of test
  images the student assigns to the omitted classes equals their share among the training
  labels (the class prior of the labelled training set, of which the transfer set is a
  part); exact, since that share is a step function of the shift.
"""

from __future__ import annotations

import torch

from kdlab.choices import STRATEGIES
from kdlab.errors import KdlabError


def _split(logits: torch.Tensor, omit: tuple[int, ...]):
    """Per image: the switching threshold, and the prediction below and above it."""
    mask = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    mask[list(omit)] = True
    omitted_idx, other_idx = mask.nonzero().flatten(), (~mask).nonzero().flatten()
    best_omitted, arg_omitted = logits[:, omitted_idx].max(1)
    best_other, arg_other = logits[:, other_idx].max(1)
    return best_other - best_omitted, other_idx[arg_other], omitted_idx[arg_omitted]


def accuracy_at(logits: torch.Tensor, y: torch.Tensor, omit: tuple[int, ...], shifts: torch.Tensor):
    """Overall accuracy and accuracy on the omitted classes [S] for each shift in `shifts` [S]."""
    threshold, below, above = _split(logits, omit)
    pred = torch.where(shifts[:, None] > threshold[None, :], above[None, :], below[None, :])
    correct = (pred == y[None, :]).double()
    on_omitted = torch.isin(y, torch.tensor(omit, device=y.device))
    return correct.mean(1), correct[:, on_omitted].mean(1)


def _between(t: torch.Tensor, k: int) -> float:
    """A shift that switches exactly the k images of lowest threshold (sorted `t`): the middle
    of the step, or 1 beyond the last threshold at either end."""
    lower = t[k - 1] if k > 0 else t[0] - 2.0
    upper = t[k] if k < len(t) else t[-1] + 2.0
    return float((lower + upper) / 2)


def best_shift(logits: torch.Tensor, y: torch.Tensor, omit: tuple[int, ...]) -> float:
    """The shift that maximises accuracy on (logits, y): the middle of the first best step."""
    threshold, below, above = _split(logits, omit)
    order = threshold.argsort()
    t = threshold[order].double()
    gain = ((above == y).long() - (below == y).long())[order]  # change when image i switches
    running = torch.cat([torch.zeros(1, dtype=torch.long, device=gain.device), gain.cumsum(0)])
    k = int(running.argmax())  # switching the k images with the lowest thresholds is best
    return _between(t, k)


def label_share(y: torch.Tensor, omit: tuple[int, ...]) -> float:
    """The share of the labels `y` that belong to the classes `omit`."""
    return float(torch.isin(y, torch.tensor(omit, device=y.device)).double().mean())


def prediction_share_shift(logits: torch.Tensor, omit: tuple[int, ...], share: float) -> float:
    """The shift at which the omitted classes are predicted for `share` of the images (the
    nearest count of them): the images switch one by one in the order of their thresholds."""
    if not 0 <= share <= 1:
        raise KdlabError(f"a share of predictions must lie in [0, 1], not {share}")
    threshold, _, _ = _split(logits, omit)
    t = threshold.sort().values.double()
    return _between(t, round(share * len(t)))


def prior_matching_shift(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, omit: tuple[int, ...], iters: int = 100
) -> float:
    """The shift at which the student's mean probability mass on the omitted classes, over
    the given unlabelled images, equals the teacher's (bisection: the mass rises with it)."""
    target = teacher_logits.double().softmax(1)[:, list(omit)].sum(1).mean()
    z = student_logits.double()
    mask = torch.zeros(z.shape[1], dtype=torch.double, device=z.device)
    mask[list(omit)] = 1.0

    def mass(shift: float) -> torch.Tensor:
        return (z + shift * mask).softmax(1)[:, list(omit)].sum(1).mean()

    lo, hi = -100.0, 100.0
    if not mass(lo) <= target <= mass(hi):
        raise KdlabError("prior matching found no shift in [-100, 100]")
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mass(mid) < target else (lo, mid)
    return (lo + hi) / 2


def choose_shift(
    strategy: str,
    omit: tuple[int, ...],
    fixed: float,
    test: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    teacher_test_logits: torch.Tensor,
    train_share: float,
) -> float:
    """One strategy's shift for a student; `test`/`val` are (student logits, labels);
    `train_share` is the omitted classes' share among the training labels."""
    if strategy == "fixed":
        return fixed
    if strategy == "oracle-test":
        return best_shift(test[0], test[1], omit)
    if strategy == "validation":
        if val is None:
            raise KdlabError("validation calibration needs a validation split: set --val-size > 0")
        return best_shift(val[0], val[1], omit)
    if strategy == "prior-matching":
        return prior_matching_shift(test[0], teacher_test_logits, omit)
    if strategy == "prediction-share":
        return prediction_share_shift(test[0], omit, train_share)
    raise KdlabError(f"unknown calibration {strategy!r}; choose from {', '.join(STRATEGIES)}")
