"""The paper's regularisers and optimisers: jitter, input dropout, max-norm, schedules
(SGD against torch's: tests/test_engine.py)."""

import itertools
import math

import pytest
import torch
from helpers import mlp_by_hand, train_spec

from kdlab.models import StackedMLP
from kdlab.training.augment import translate
from kdlab.training.engine import Monitor, SoftTargets, TrainingData, predict, train_group
from kdlab.training.schedule import lr_factor


def _naive_shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Image [C, H, W] moved by (dy, dx), the border pixels repeated into the gap."""
    _c, h, w = image.shape
    out = torch.empty_like(image)
    for i in range(h):
        for j in range(w):
            out[:, i, j] = image[:, min(max(i - dy, 0), h - 1), min(max(j - dx, 0), w - 1)]
    return out


def test_translate_moves_each_image_by_its_own_shift():
    shape = (2, 5, 6)
    x = torch.randn(3, 4, 2 * 5 * 6)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    moved, shifts = translate(x, shape, 2, gens)
    replay = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    for k, g in enumerate(replay):
        dy, dx = torch.randint(-2, 3, (2, 4), generator=g)
        assert torch.equal(shifts[:, k], torch.stack([dy, dx]))
        for b in range(4):
            expected = _naive_shift(x[k, b].view(shape), int(dy[b]), int(dx[b]))
            assert torch.equal(moved[k, b].view(shape), expected)


def test_translate_by_zero_pixels_is_the_identity():
    x = torch.randn(2, 3, 16)
    moved, shifts = translate(x, (1, 4, 4), 0, [torch.Generator(), torch.Generator()])
    assert torch.equal(moved, x) and not shifts.any()


def test_max_norm_caps_only_the_long_columns():
    model = StackedMLP((6, 5, 3), 2)
    model.reset_parameters([torch.Generator().manual_seed(s) for s in (1, 2)])
    with torch.no_grad():
        model.weights[0][1, :, 0] *= 100.0  # one long column in model 1
    before = [w.clone() for w in model.weights]
    model.max_norm_(1.0)
    norms = torch.linalg.vector_norm(model.weights[0].detach(), dim=1)
    assert norms.max() <= 1.0 + 1e-6
    assert math.isclose(float(norms[1, 0]), 1.0, rel_tol=1e-6)
    short = torch.linalg.vector_norm(before[1], dim=1) <= 1.0
    assert torch.equal(
        model.weights[1][short.unsqueeze(1).expand_as(before[1])],
        before[1][short.unsqueeze(1).expand_as(before[1])],
    )


def test_max_norm_from_squares_is_the_vector_norms_cap():
    model = StackedMLP((20, 30, 5), 2)
    model.reset_parameters([torch.Generator().manual_seed(s) for s in (0, 1)])
    with torch.no_grad():
        model.weights[0][:, :, :10] *= 20  # some columns far over the limit
    reference = []
    for w in model.weights:
        w = w.detach()
        norms = torch.linalg.vector_norm(w, dim=1, keepdim=True)
        reference.append(w * (1.0 / norms.clamp(min=1e-12)).clamp(max=1.0))
    model.max_norm_(1.0)
    for got, want in zip(model.weights, reference):
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_the_dropout_mask_drops_the_rate_asked_for_and_keeps_the_mean(rate):
    x = torch.ones(2, 499, 1001)  # not a multiple of 4 per model: the last 64-bit draw is used in part
    mask = StackedMLP._dropout_mask(x, [torch.Generator().manual_seed(s) for s in (0, 1)], rate)
    scale = 1 / (1 - round(rate * 65536) / 65536)
    values = mask.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(scale)
    dropped = (mask == 0).double().mean(dim=(1, 2))
    assert torch.allclose(dropped, torch.full((2,), rate, dtype=torch.float64), atol=3e-3)
    assert mask.double().mean().item() == pytest.approx(1.0, abs=5e-3)
    assert not torch.equal(mask[0], mask[1])  # each model its own draws


def test_a_models_dropout_mask_is_the_same_in_a_group_as_alone():
    x = torch.ones(3, 7, 9)
    group = StackedMLP._dropout_mask(x, [torch.Generator().manual_seed(s) for s in (4, 5, 6)], 0.5)
    alone = StackedMLP._dropout_mask(x[:1], [torch.Generator().manual_seed(5)], 0.5)
    assert torch.equal(group[1], alone[0])


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_schedules_start_at_one_and_never_grow(schedule):
    factors = [lr_factor(schedule, s, 10) for s in range(11)]
    assert factors[0] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(factors))
    assert factors[-1] == (1.0 if schedule == "constant" else pytest.approx(0.0, abs=1e-12))


def _images(n=96, side=6, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, side * side, generator=g)
    y = (x[:, :c].argmax(1) + (torch.rand(n, generator=g) < 0.1).long()) % c
    return x, y


def _spec(**kw):
    """The engine's test spec on 6x6 images, with every regulariser and SGD turned on."""
    return train_spec(
        **{
            "sizes": (36, 16, 16, 3), "dropout": 0.3, "epochs": 2, "batch_size": 16, "lr": 0.05,
            "temperature": 3.0, "input_dropout": 0.2, "max_norm": 1.5, "jitter": 1, "optimizer": "sgd",
            "momentum": 0.9, "schedule": "cosine", **kw,
        }
    )  # fmt: skip


def test_group_equals_separate_runs_with_every_regulariser_and_a_jittered_teacher():
    x, y = _images()
    teacher = StackedMLP((36, 8, 3), 1)
    teacher.reset_parameters([torch.Generator().manual_seed(9)])
    specs = [
        _spec(),
        _spec(alpha=0.9, temperature=2.0, init_seed=3, stream_seed=4),
        _spec(alpha=1.0, lr=0.01, init_seed=5, stream_seed=6),
    ]
    transfer = torch.arange(len(x))
    data, watch, soft = TrainingData(x, y, 3, (1, 6, 6)), Monitor(x, y), SoftTargets(None, teacher)
    group, group_hist = train_group(specs, data, transfer, watch, soft)
    for k, spec in enumerate(specs):
        single, single_hist = train_group([spec], data, transfer, watch, soft)
        assert abs(group_hist[k][-1]["train_loss"] - single_hist[0][-1]["train_loss"]) < 1e-5
        for name, value in single.state_of(0).items():
            assert torch.allclose(group.state_of(k)[name], value, atol=1e-5)
    assert torch.linalg.vector_norm(group.weights[0], dim=1).max() <= 1.5 + 1e-5


def test_jittered_distillation_needs_the_teacher_itself():
    x, y = _images()
    logits = torch.randn(len(x), 3)
    with pytest.raises(ValueError, match="teacher itself"):
        data = TrainingData(x, y, 3, (1, 6, 6))
        train_group([_spec(alpha=0.5)], data, torch.arange(len(x)), Monitor(x, y), SoftTargets(logits))


def test_input_dropout_changes_training_and_is_off_at_evaluation():
    x, y = _images()
    transfer = torch.arange(len(x))
    data = TrainingData(x, y, 3, (1, 6, 6))
    plain, _ = train_group([_spec(input_dropout=0.0)], data, transfer, Monitor(x, y))
    dropped, _ = train_group([_spec(input_dropout=0.5)], data, transfer, Monitor(x, y))
    assert not torch.equal(plain.weights[0], dropped.weights[0])
    # at evaluation the inputs are whole: the trained network computed by hand
    assert torch.allclose(predict(dropped, x)[0], mlp_by_hand(dropped.state_of(0), x), atol=1e-5)


def test_dropout_masks_are_uncorrelated_across_neighbouring_units_and_steps():
    """Four units share one 64-bit draw: their masks, and a unit's masks at consecutive steps,
    must still be independent (a correlation of 0 within sampling noise, about 1e-3 here)."""
    gen = [torch.Generator().manual_seed(0)]
    x = torch.ones(1, 64, 1000)
    masks = torch.stack([StackedMLP._dropout_mask(x, gen, 0.5)[0].flatten() > 0 for _ in range(20)]).double()

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
        return float((a * b).mean() / (a.std() * b.std()))

    for lag in (1, 2, 3, 4, 5):  # within one draw, and across draws
        assert abs(corr(masks[:, :-lag], masks[:, lag:])) < 5e-3, lag
    assert abs(corr(masks[:-1], masks[1:])) < 5e-3  # step to step
    assert abs(masks.mean().item() - 0.5) < 3e-3


@pytest.mark.parametrize("threshold", [0, 1, 13107, 32768, 65535])
def test_the_float_mask_is_the_bool_compare_bit_for_bit(threshold):
    """The mask is computed in floats, (bits - threshold + 32769) clamped to [0, 1] and scaled:
    to the last bit the compare bits >= threshold - 32768 it replaced, on the same random bits
    (2^18 of them, nearly every 16-bit value) for K = 2 models."""
    from kdlab.models.stacked import StackedModule

    rate, x = threshold / 65536, torch.empty(2, 512, 256)
    mask = StackedModule._dropout_mask(x, [torch.Generator().manual_seed(k) for k in range(2)], rate)
    bits = torch.empty(2, 512 * 256 // 4, dtype=torch.int64)
    for k in range(2):
        bits[k].random_(-(2**63), None, generator=torch.Generator().manual_seed(k))
    keep = bits.view(torch.int16).reshape(x.shape) >= threshold - 32768
    old = keep.to(torch.float32).mul_(65536 / (65536 - threshold))
    assert torch.equal(mask.view(torch.int32), old.view(torch.int32))


def test_masking_in_place_before_relu_is_relu_then_mask_to_the_bit():
    """The forward masks each layer's product in place and then applies ReLU in place; the
    textbook order, ReLU and then a new masked tensor, must give the same logits and the same
    gradients to the last bit, or every stored model would change."""
    model = StackedMLP((12, 16, 16, 3), 2, dropout=0.5, input_dropout=0.2)
    model.reset_parameters([torch.Generator().manual_seed(s) for s in (1, 2)])
    x = torch.randn(2, 32, 12, generator=torch.Generator().manual_seed(3))

    def textbook(generators):
        h = model._drop_inputs(x, generators)
        for i, (w, b) in enumerate(zip(model.weights, model.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(model.weights) - 1:
                h = torch.relu(h)
                h = h * model._dropout_mask(h, generators, model.dropout)
        return h

    results = []
    for forward in (lambda generators: model(x, generators), textbook):
        model.zero_grad()
        out = forward([torch.Generator().manual_seed(s) for s in (7, 8)])
        out.square().sum().backward()
        results.append([out.detach(), *(p.grad.clone() for p in model.parameters())])
    assert all(torch.equal(a, b) for a, b in zip(*results))
    assert (results[0][0] != 0).any()
