"""The candidate engine of bench/candidate.py: its changes keep the engine's meaning (an
unbiased dropout mask at the rate asked for, each model on its own generator; the same max-norm
up to rounding), so that what bench/ measures of it is the same training, faster.
Its functions are called directly: `apply()` would change kdlab for every later test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import candidate

from kdlab.models.mlp import StackedMLP


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_the_bit_mask_drops_the_rate_asked_for_and_keeps_the_mean(rate):
    x = torch.ones(2, 499, 1001)  # not a multiple of 4 per model: the last 64-bit draw is used in part
    mask = candidate.dropout_mask_bits(x, [torch.Generator().manual_seed(s) for s in (0, 1)], rate)
    scale = 1 / (1 - round(rate * 65536) / 65536)
    values = mask.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(scale)
    dropped = (mask == 0).double().mean(dim=(1, 2))
    assert torch.allclose(dropped, torch.full((2,), rate, dtype=torch.float64), atol=3e-3)
    assert mask.double().mean().item() == pytest.approx(1.0, abs=5e-3)
    assert not torch.equal(mask[0], mask[1])  # each model its own draws


def test_a_models_mask_is_the_same_in_a_group_as_alone():
    x = torch.ones(3, 7, 9)
    group = candidate.dropout_mask_bits(x, [torch.Generator().manual_seed(s) for s in (4, 5, 6)], 0.5)
    alone = candidate.dropout_mask_bits(x[:1], [torch.Generator().manual_seed(5)], 0.5)
    assert torch.equal(group[1], alone[0])


def test_the_squares_max_norm_caps_what_the_engines_caps():
    def model() -> StackedMLP:
        m = StackedMLP((20, 30, 5), 2)
        m.reset_parameters([torch.Generator().manual_seed(s) for s in (0, 1)])
        with torch.no_grad():
            m.weights[0][:, :, :10] *= 20  # some columns far over the limit
        return m

    engine, squares = model(), model()
    engine.max_norm_(1.0)
    candidate.max_norm_squares_(squares, 1.0)
    for a, b in zip(engine.weights, squares.weights):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    assert torch.linalg.vector_norm(squares.weights[0], dim=1).max() <= 1.0 + 1e-6
