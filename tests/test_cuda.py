"""The CUDA path: the engine's group equivalence and a small protocol on the GPU. Marked `cuda`
and skipped where torch sees no GPU (`pytest -m cuda` runs only these)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import classes_data, train_spec

import kdlab
from kdlab.training.engine import Monitor, SoftTargets, TrainingData, train_group

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device"),
]


def test_a_group_on_the_gpu_equals_its_models_trained_alone():
    x, y = (t.cuda() for t in classes_data())
    teacher = SoftTargets(torch.randn(len(x), 4, generator=torch.Generator().manual_seed(5)).cuda())
    specs = [
        train_spec(dropout=0.3, input_dropout=0.1, max_norm=2.0),
        train_spec(
            dropout=0.3,
            input_dropout=0.1,
            max_norm=2.0,
            alpha=0.9,
            temperature=4.0,
            init_seed=3,
            stream_seed=4,
        ),
    ]
    data, monitor, rows = TrainingData(x, y, 4), Monitor(x, y), torch.arange(len(x), device="cuda")
    group, group_history = train_group(specs, data, rows, monitor, teacher)
    assert group.weights[0].is_cuda
    for k, spec in enumerate(specs):
        alone, history = train_group([spec], data, rows, monitor, teacher)
        for a, b in zip(group_history[k], history[0]):
            assert a["val_acc"] == pytest.approx(b["val_acc"], abs=1e-6)
        for name, value in alone.state_of(0).items():
            assert torch.allclose(group.state_of(k)[name], value, atol=1e-5), name
    assert group_history[0][-1]["val_acc"] > 0.5  # it learns: chance is 0.25


@pytest.mark.slow
def test_a_small_protocol_runs_on_the_gpu(shared_data: Path, tmp_path: Path):
    run = dict(data_dir=shared_data, models_dir=tmp_path / "models", epochs=1, subset=2000)
    gpu = kdlab.run("mythical-digit", device="cuda", **run)
    assert list(gpu.table.columns)[:3] == ["Teacher", "Norm", "KD"]
    assert gpu.table.loc["Avg", "Teacher"] > 50  # a teacher of 2,000 images, one epoch: far above 10%
