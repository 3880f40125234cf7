"""StackedCNN: a model inside a group of K equals the same model alone, and its state round-trips."""

import pytest
import torch

from kdlab.models import StackedCNN
from kdlab.protocols.study import shift_output_bias

SHAPE = (3, 8, 8)
SIZES = (3 * 8 * 8, 4, 8, 10)
SEEDS = (1, 2, 3)


def _model(seeds=SEEDS, dropout=0.5):
    model = StackedCNN(SIZES, len(seeds), dropout, image_shape=SHAPE)
    model.reset_parameters([torch.Generator().manual_seed(s) for s in seeds])
    return model


def _streams(seeds=SEEDS):
    return [torch.Generator().manual_seed(100 + s) for s in seeds]


def _inputs(k=3, batch=5):
    return torch.randn(k, batch, SIZES[0], generator=torch.Generator().manual_seed(0))


def test_shapes_and_state_layout():
    model = _model()
    assert model(_inputs()).shape == (3, 5, 10)
    state = model.state_of(0)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "w0": (4, 3, 3, 3),
        "b0": (4,),
        "w1": (8, 4, 3, 3),
        "b1": (8,),
        "w2": (8, 10),
        "b2": (10,),
    }
    assert model.num_params_per_model() == sum(v.numel() for v in state.values())
    assert (model.num_models, model.sizes, model.dropout) == (3, SIZES, 0.5)


def test_rejects_sizes_that_do_not_match_the_image():
    with pytest.raises(ValueError):
        StackedCNN((100, 4, 10), 1, image_shape=SHAPE)


def test_group_equals_each_model_alone_with_dropout():
    x = _inputs()
    group = _model()
    logits = group(x, _streams())
    logits.square().sum().backward()
    for k, seed in enumerate(SEEDS):
        single = _model((seed,))
        alone = single(x[k : k + 1], _streams((seed,)))
        assert torch.allclose(logits[k], alone[0], atol=1e-5)
        alone.square().sum().backward()
        for p_group, p_single in zip(group.parameters(), single.parameters()):
            assert torch.allclose(p_group.grad[k], p_single.grad[0], atol=1e-5)


def test_state_round_trip():
    model = _model()
    states = [model.state_of(k) for k in range(3)]
    copy = StackedCNN.from_states(SIZES, states[::-1], dropout=0.5, image_shape=SHAPE)
    x = _inputs()
    assert torch.equal(copy(x.flip(0)), model(x).flip(0))
    for k in range(3):
        for name, value in copy.state_of(2 - k).items():
            assert torch.equal(value, states[k][name])


def test_output_bias_is_the_last_b():
    model = _model()
    state = model.state_of(1)
    shifted = shift_output_bias(state, (3,), 5.0)
    model.load_state_into(1, shifted)
    assert torch.equal(model.biases[-1][1, 0], state["b2"] + 5.0 * (torch.arange(10) == 3))


def test_dropout_only_with_generators():
    model = _model()
    x = _inputs()
    assert torch.equal(model(x), model(x))
    assert not torch.allclose(model(x, _streams()), model(x))
    assert torch.equal(model(x, _streams()), model(x, _streams()))
