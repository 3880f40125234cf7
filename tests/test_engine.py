"""The batched engine: a group of K models equals K separate runs; the optimisers equal torch's."""

import pytest
import torch
from helpers import classes_data, mlp_by_hand, train_spec

from kdlab.errors import KdlabError
from kdlab.models import StackedMLP
from kdlab.training.engine import Monitor, SoftTargets, TrainingData, predict, score, take, train_group
from kdlab.training.optim import StackedAdam, StackedSGD

_data = classes_data


def test_group_equals_separate_runs():
    x, y = _data()
    teacher_logits = torch.randn(len(x), 4, generator=torch.Generator().manual_seed(5))
    transfer = torch.nonzero(y != 2).flatten()
    specs = [
        train_spec(),
        train_spec(alpha=0.9, temperature=2.0, init_seed=3, stream_seed=4),
        train_spec(alpha=0.5, t2=False, lr=3e-3, init_seed=5, stream_seed=6),
        train_spec(alpha=1.0, temperature=8.0, lr=3e-3, init_seed=7, stream_seed=8),
    ]
    data, watch, soft = TrainingData(x, y, 4), Monitor(x, y), SoftTargets(teacher_logits)
    group, group_hist = train_group(specs, data, transfer, watch, soft)
    for k, spec in enumerate(specs):
        single, single_hist = train_group([spec], data, transfer, watch, soft)
        for a, b in zip(group_hist[k], single_hist[0]):
            for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
                assert abs(a[key] - b[key]) < 1e-5, (k, key, a[key], b[key])
        for name, value in single.state_of(0).items():
            assert torch.allclose(group.state_of(k)[name], value, atol=1e-5)


def test_training_learns_and_is_deterministic():
    x, y = _data()
    transfer = torch.arange(len(x))
    model_a, hist_a = train_group([train_spec(epochs=5)], TrainingData(x, y, 4), transfer, Monitor(x, y))
    model_b, hist_b = train_group([train_spec(epochs=5)], TrainingData(x, y, 4), transfer, Monitor(x, y))

    def strip(hist):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in hist[0]]

    assert strip(hist_a) == strip(hist_b)
    assert torch.equal(model_a.weights[0], model_b.weights[0])
    assert hist_a[0][-1]["val_acc"] > 0.5  # chance is 0.25
    assert hist_a[0][-1]["train_loss"] < hist_a[0][0]["train_loss"]


def test_different_seeds_differ():
    x, y = _data()
    transfer = torch.arange(len(x))
    _, hist = train_group(
        [train_spec(), train_spec(init_seed=9)], TrainingData(x, y, 4), transfer, Monitor(x, y)
    )
    assert hist[0][-1]["train_loss"] != hist[1][-1]["train_loss"]


@pytest.mark.parametrize(
    ("ours", "theirs", "shape", "lrs", "steps", "exact"),
    [
        pytest.param(
            lambda p, lrs: StackedAdam(p, lrs),
            lambda p, lr: torch.optim.Adam(p, lr=lr, fused=True),
            (3, 5, 4), [1e-3, 1e-2, 1e-3], 5, True, id="adam-vs-fused-adam",
        ),
        *(
            pytest.param(
                lambda p, lrs, n=nesterov: StackedSGD(p, lrs, momentum=0.9, nesterov=n),
                lambda p, lr, n=nesterov: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=n),
                (2, 4, 3), [0.1, 0.01], 4, False, id=f"sgd-momentum-nesterov-{nesterov}",
            )
            for nesterov in (False, True)
        ),
    ],
)  # fmt: skip
def test_stacked_optimiser_matches_torch_per_model(ours, theirs, shape, lrs, steps, exact):
    """A stacked optimiser steps each of its K models as torch's optimiser steps that one alone."""
    torch.manual_seed(0)
    k_models = shape[0]
    stacked = torch.nn.Parameter(torch.randn(*shape))
    singles = [torch.nn.Parameter(stacked[k].detach().clone()) for k in range(k_models)]
    optimiser = ours([stacked], lrs)
    references = [theirs([singles[k]], lrs[k]) for k in range(k_models)]
    for _ in range(steps):
        grad = torch.randn(*shape)
        stacked.grad = grad.clone()
        optimiser.step()
        for k in range(k_models):
            singles[k].grad = grad[k].clone()
            references[k].step()
    for k in range(k_models):
        if exact:
            assert torch.equal(stacked[k], singles[k])
        else:
            assert torch.allclose(stacked[k], singles[k], atol=1e-6)


def test_score_counts_per_class():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]]])  # predicts 0,1,0,1
    y = torch.tensor([0, 1, 1, 1])
    result = score(logits, y, 2)
    assert result.per_class[0].tolist() == [1.0, 2 / 3]
    assert int(result.errors[0]) == 1
    assert float(result.accuracy[0]) == 0.75


def test_predict_is_the_network_without_dropout():
    """Evaluation computes the plain network: no dropout mask, no scaling (inverted dropout)."""
    model = StackedMLP((12, 8, 4), 2, dropout=0.5, input_dropout=0.2)
    model.reset_parameters([torch.Generator().manual_seed(s) for s in (1, 2)])
    x, _ = _data()
    logits = predict(model, x, chunk=50)
    for k in range(2):
        assert torch.allclose(logits[k], mlp_by_hand(model.state_of(k), x), atol=1e-5)


def test_student_dropout_leaves_the_teacher_alone():
    from types import SimpleNamespace

    from kdlab.protocols.study import make_spec
    from kdlab.settings.study import StudyConfig

    data = SimpleNamespace(num_features=12, classes=tuple("abcd"))
    config = StudyConfig(student_dropout=0.2, arch="mlp").for_data((1, 3, 4))
    assert make_spec(config, data, (8,), 0.0, "teacher", 0).dropout == 0.5
    assert make_spec(config, data, (8,), 0.9, "student", 0).dropout == 0.2
    same = StudyConfig(arch="mlp").for_data((1, 3, 4))
    assert make_spec(same, data, (8,), 0.9, "student", 0).dropout == 0.5


@pytest.mark.parametrize("n", [10, 16, 100, 256, 270, 53869, 60000])
def test_batches_are_multiples_of_16_rows_within_one_pass(n):
    from kdlab.training.engine import batches

    sizes = [s.stop - s.start for s in batches(n, 256)]
    assert all(s.start == i * 256 for i, s in enumerate(batches(n, 256)))  # in order, each after the last
    assert all(size <= 256 for size in sizes) and (n < 16 or all(size % 16 == 0 for size in sizes))
    assert n - 15 <= sum(sizes) <= n  # at most 15 rows wait for the next epoch
    assert n >= 16 or sizes == [n]  # a set smaller than the alignment is one batch


def test_a_model_in_a_group_is_bit_identical_to_it_alone_at_a_partial_batch():
    """At 109 rows (not a multiple of 16) MKL rounds a model at an odd position in a group
    differently (bench/group_position.py); the engine's batches keep every slab aligned."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(256 + 109, 784, generator=gen), torch.randint(0, 10, (256 + 109,), generator=gen)
    logits = torch.randn(len(x), 10, generator=gen)
    rows = torch.arange(len(x))
    spec = train_spec(sizes=(784, 300, 300, 10), epochs=1, batch_size=256, alpha=0.0)
    kd = train_spec(
        sizes=(784, 300, 300, 10), epochs=1, batch_size=256, alpha=0.9, init_seed=3, stream_seed=4
    )
    data, monitor, teacher = TrainingData(x, y, 10), Monitor(x, y), SoftTargets(logits)
    group, _ = train_group([spec, kd], data, rows, monitor, teacher)
    alone, _ = train_group([kd], data, rows, monitor, teacher)
    for name, value in alone.state_of(0).items():
        assert torch.equal(group.state_of(1)[name], value), name


def test_a_teachers_views_are_its_logits_on_each_moved_batch():
    """The consistent soft targets hinton2015's --jitter-transfer makes once (`Lab.shifted_logits`
    into `SoftTargets.views`) equal the teacher run on every moved batch."""
    from pathlib import Path
    from types import SimpleNamespace

    from kdlab.protocols.common import Lab
    from kdlab.training.augment import translate
    from kdlab.training.store import TrainedModel

    shape, sizes = (1, 4, 4), (16, 8, 5)
    net = StackedMLP(sizes, 1)
    net.reset_parameters([torch.Generator().manual_seed(0)])
    x = torch.randn(10, 16, generator=torch.Generator().manual_seed(3))
    teacher = TrainedModel("Teacher", "mlp", sizes, net.state_of(0), {}, False, Path("."), None)
    lab = SimpleNamespace(x=x, device=torch.device("cpu"), data=SimpleNamespace(image_shape=shape))
    views = Lab.shifted_logits(lab, [teacher], torch.arange(10), 1)[:, 0]  # [V, R, C]
    assert views.shape == (9, 10, 5)
    rows = torch.tensor([[0, 4, 9], [2, 2, 5]])
    moved, shifts = translate(x[rows], shape, 1, [torch.Generator().manual_seed(s) for s in (5, 6)])
    t = torch.tensor([2.0, 3.0])
    from_views, per_batch = SoftTargets(None, None, views, None, 1), SoftTargets(None, net)
    assert from_views.ready(True) and per_batch.ready(True) and not per_batch.ready(False)
    assert bool(shifts.any())
    expected = per_batch.of(rows, moved, shifts, t)
    assert torch.allclose(from_views.of(rows, moved, shifts, t), expected, atol=1e-6)
    flipped = SoftTargets(None, None, views.flip(1), torch.arange(9, -1, -1), 1)  # rows stored reversed
    assert torch.allclose(flipped.of(rows, moved, shifts, t), expected, atol=1e-6)


def test_a_diverging_model_stops_training_at_its_first_non_finite_epoch():
    x, y = _data()
    epochs = []
    specs = [train_spec(epochs=5), train_spec(epochs=5, lr=1e30, init_seed=2)]
    with pytest.raises(
        KdlabError,
        match=r"diverged: the loss was (nan|inf) in epoch 1 \(model 2 of 2, learning rate 1e\+30\)",
    ):
        train_group(
            specs,
            TrainingData(x, y, 4),
            torch.arange(len(x)),
            Monitor(x, y),
            on_epoch=lambda e, *_: epochs.append(e),
        )
    assert epochs == []  # stopped before evaluating or reporting the epoch


@pytest.mark.parametrize("shape", [(50,), (50, 7), (50, 1, 4, 4)])
def test_take_is_advanced_indexing(shape):
    """The engine gathers each model's batch by index_select: the same tensor as t[rows], for
    rows [K, B] that are a strided view, as a batch of the data order is."""
    t = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    order = torch.stack([torch.randperm(50, generator=torch.Generator().manual_seed(k)) for k in range(3)])
    rows = order[:, 5:21]
    assert not rows.is_contiguous()
    assert torch.equal(take(t, rows), t[rows])
