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


@pytest.mark.parametrize("n", [10, 16, 100, 256, 270, 53869, 60000])
def test_aligned_batches_are_multiples_of_16_rows_within_one_pass(n):
    out = candidate.aligned_batches(n, 256)
    sizes = [s.stop - s.start for s in out]
    assert all(s.start == i * 256 for i, s in enumerate(out))  # in order, each after the last
    assert all(size <= 256 for size in sizes) and (n < 16 or all(size % 16 == 0 for size in sizes))
    assert n - 15 <= sum(sizes) <= n  # at most 15 rows wait for the next epoch
    assert n >= 16 or sizes == [n]  # a set smaller than the alignment is one batch


def test_a_model_in_a_group_is_the_model_alone_with_aligned_batches(monkeypatch):
    """The engine's known failure (tests/test_engine.py: a partial batch of 109 rows rounds a
    model at an odd position of its group differently) does not happen with the candidate's
    batches."""
    from kdlab.training import engine
    from kdlab.training.engine import Monitor, SoftTargets, TrainingData, TrainSpec, train_group

    monkeypatch.setattr(engine, "batches", candidate.aligned_batches)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(256 + 109, 784, generator=gen), torch.randint(0, 10, (256 + 109,), generator=gen)
    data, monitor = TrainingData(x, y, 10), Monitor(x, y)
    teacher = SoftTargets(torch.randn(len(x), 10, generator=gen))

    def spec(alpha: float, seed: int) -> TrainSpec:
        return TrainSpec((784, 300, 300, 10), 0.0, 1, 256, 1e-3, alpha, 4.0, True, seed, seed + 1)

    group, _ = train_group([spec(0.0, 0), spec(0.9, 3)], data, torch.arange(len(x)), monitor, teacher)
    alone, _ = train_group([spec(0.9, 3)], data, torch.arange(len(x)), monitor, teacher)
    for name, value in alone.state_of(0).items():
        assert torch.equal(group.state_of(1)[name], value), name
