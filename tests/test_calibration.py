"""Each calibration strategy on constructed logits where the right shift is known."""

import math

import pytest
import torch

from kdlab import KdlabError
from kdlab.calibration import (
    accuracy_at,
    best_shift,
    choose_shift,
    label_share,
    prediction_share_shift,
    prior_matching_shift,
)


def _constructed(n_per_class=50, classes=4, omitted=2, lag=2.0, margin=5.0):
    """Images of the omitted class: their omitted logit trails the best other by `lag`.
    Other images: the right class leads the omitted logit by `margin` (and the rest by more)."""
    y = torch.arange(classes).repeat_interleave(n_per_class)
    logits = torch.zeros(len(y), classes)
    for i, label in enumerate(y.tolist()):
        if label == omitted:
            logits[i, (omitted + 1) % classes] = 1.0
            logits[i, omitted] = 1.0 - lag
        else:
            logits[i, label] = margin
            logits[i, omitted] = 0.0
            logits[i, [c for c in range(classes) if c not in (label, omitted)]] = -1.0
    return logits, y


def test_best_shift_finds_the_window_between_lag_and_margin():
    logits, y = _constructed()
    shift = best_shift(logits, y, (2,))
    assert 2.0 < shift < 5.0
    overall, omitted = accuracy_at(logits, y, (2,), torch.tensor([0.0, shift, 6.0]))
    assert omitted.tolist() == [0.0, 1.0, 1.0]
    assert overall.tolist() == [0.75, 1.0, 0.25]


def test_best_shift_can_be_negative_or_zero_need():
    logits, y = _constructed(lag=-1.0)  # the omitted class already wins on its images
    shift = best_shift(logits, y, (2,))
    overall, _ = accuracy_at(logits, y, (2,), torch.tensor([shift]))
    assert overall.item() == 1.0 and -1.0 < shift < 5.0


def test_best_shift_with_two_omitted_classes():
    logits, y = _constructed(classes=5, omitted=1)
    logits[y == 3, 3] = -3.0  # make class 3 a second omitted class, trailing class 4 by 4
    logits[y == 3, 4] = 1.0
    logits[y == 3, 1] = -5.0  # on each omitted class's images, that class leads the other one
    logits[y == 1, 3] = -5.0
    shift = best_shift(logits, y, (1, 3))
    assert 4.0 < shift < 5.0
    overall, omitted = accuracy_at(logits, y, (1, 3), torch.tensor([shift]))
    assert omitted.item() == 1.0 and overall.item() == 1.0


def test_validation_uses_the_validation_split_not_the_test_set():
    test_logits, test_y = _constructed(lag=2.0, margin=5.0)
    val_logits, val_y = _constructed(lag=6.0, margin=9.0)
    teacher = torch.zeros_like(test_logits)
    shift = choose_shift("validation", (2,), 3.5, (test_logits, test_y), (val_logits, val_y), teacher, 0.25)
    assert 6.0 < shift < 9.0
    oracle = choose_shift("oracle-test", (2,), 3.5, (test_logits, test_y), (val_logits, val_y), teacher, 0.25)
    assert 2.0 < oracle < 5.0
    with pytest.raises(KdlabError, match="val-size"):
        choose_shift("validation", (2,), 3.5, (test_logits, test_y), None, teacher, 0.25)


def test_fixed_and_unknown():
    logits, y = _constructed()
    assert choose_shift("fixed", (2,), 3.5, (logits, y), None, logits, 0.25) == 3.5
    with pytest.raises(KdlabError, match="unknown calibration"):
        choose_shift("magic", (2,), 3.5, (logits, y), None, logits, 0.25)


def test_prior_matching_recovers_a_known_shift():
    """Two classes; the student's omitted logit sits 3 below where the teacher's is: matching
    the teacher's mean probability must undo exactly that."""
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(400, 2, generator=g)
    student = teacher.clone()
    student[:, 1] -= 3.0
    assert prior_matching_shift(student, teacher, (1,)) == pytest.approx(3.0, abs=1e-6)


def test_prior_matching_closed_form_single_logit():
    student = torch.tensor([[0.0, -2.0]]).repeat(10, 1)
    teacher = torch.tensor([[0.0, math.log(3.0)]]).repeat(10, 1)  # teacher mass 3/4
    assert prior_matching_shift(student, teacher, (1,)) == pytest.approx(2.0 + math.log(3.0), abs=1e-6)


def test_prediction_share_predicts_the_training_share_without_test_labels():
    """A quarter of the constructed images are of the omitted class: a training share of 0.25
    must switch exactly them (the window between lag and margin), whatever the test labels."""
    logits, y = _constructed()
    share = label_share(y, (2,))
    assert share == 0.25
    shift = prediction_share_shift(logits, (2,), share)
    assert 2.0 < shift < 5.0
    predicted = (logits + shift * (torch.arange(4) == 2)).argmax(1)
    assert float((predicted == 2).double().mean()) == 0.25
    assert choose_shift("prediction-share", (2,), 3.5, (logits, y.flip(0)), None, logits, share) == shift


def test_prediction_share_at_the_ends_and_out_of_range():
    logits, _ = _constructed()
    none, every = prediction_share_shift(logits, (2,), 0.0), prediction_share_shift(logits, (2,), 1.0)
    mask = torch.arange(4) == 2
    assert int(((logits + none * mask).argmax(1) == 2).sum()) == 0
    assert int(((logits + every * mask).argmax(1) == 2).sum()) == len(logits)
    with pytest.raises(KdlabError, match="share"):
        prediction_share_shift(logits, (2,), 1.5)
