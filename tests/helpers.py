"""Helpers shared by the tests: synthetic IDX files, the reduced budgets of the end-to-end
runs and the command that starts them, a training spec, and an MLP computed by hand."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kdlab.cli import main
from kdlab.data.base import SPLIT_FILES
from kdlab.training.engine import TrainSpec

STEMS = tuple(SPLIT_FILES.values())
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = STEMS


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x000008<ndim>, big-endian dims, the bytes."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    return header + a.tobytes()


def gz(data: bytes, mtime: int = 0) -> bytes:
    """Deterministic gzip (fixed mtime) so the md5 of the file is stable."""
    return gzip.compress(data, mtime=mtime)


def idx_arrays(n_train: int, n_test: int, shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """Small random 'images' of `shape` with labels 0-9, keyed by file stem."""
    rng = np.random.default_rng(seed)
    return {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx(folder: Path, files: dict[str, bytes], gzipped: bool = True) -> Path:
    """Write IDX files into `folder` (created), as `<stem>.gz` or raw `<stem>`."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in files.items():
        if gzipped:
            (folder / f"{stem}.gz").write_bytes(gz(data))
        else:
            (folder / stem).write_bytes(data)
    return folder


def files_under(folder: Path) -> list[str]:
    """All files below `folder` (relative paths, sorted); [] if it does not exist."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def budget(epochs: int, subset: int, teacher: tuple[int, ...] = (300, 300), *extra: str) -> list[str]:
    """The options of a reduced-budget end-to-end run (quiet), plus `extra`."""
    return [
        "--epochs", str(epochs), "--subset", str(subset), "--batch-size", "100", "--quiet",
        "--teacher-hidden", *map(str, teacher), *extra,
    ]  # fmt: skip


# The [base] of the sweep and search files of tests/test_sweep.py and tests/test_tune.py: a tiny
# mythical-digit study that selects on a validation split.
TINY_STUDY = """[base]
val_size = 1000
calibration = ["validation"]
teacher_hidden = [100]
student_hidden = [50]
"""


def run(protocol: str, data_dir: Path, out: Path, *options: str) -> int:
    """The exit code of `kdlab run <protocol> --data-dir <data_dir> --out <out> <options>`."""
    return main(["run", protocol, "--data-dir", str(data_dir), "--out", str(out), *options])


def results_of(protocol: str, data_dir: Path, out: Path, *options: str) -> dict:
    """Run as `run` does, require exit code 0, and return the results.json it wrote."""
    code = run(protocol, data_dir, out, *options)
    assert code == 0, f"kdlab run {protocol} exited with {code}"
    return json.loads((Path(out) / "results.json").read_text())


def run_once(name: str, protocol: str, *options: str):
    """A module-scoped fixture called `name`: one `kdlab run <protocol> <options>` on the shared
    data into a fresh folder, as (that folder, its results)."""

    @pytest.fixture(scope="module", name=name)
    def fixture(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
        out = tmp_path_factory.mktemp(name) / "out"
        return out, results_of(protocol, shared_data, out, *options)

    return fixture


# A training spec small enough for the unit tests; `train_spec` replaces any field.
SPEC_BASE = dict(
    sizes=(12, 16, 16, 4), dropout=0.5, epochs=3, batch_size=32, lr=1e-2, alpha=0.0, temperature=4.0,
    t2=True, init_seed=1, stream_seed=2,
)  # fmt: skip


def train_spec(**fields) -> TrainSpec:
    """A TrainSpec of SPEC_BASE with `fields` replaced or added."""
    return TrainSpec(**{**SPEC_BASE, **fields})


def assert_mnist_layout(data, folder: Path) -> None:
    """60000/10000 flattened 784-pixel float32 images with int64 labels, read from `folder`."""
    assert data.x_train.shape == (60000, 784)
    assert data.x_test.shape == (10000, 784)
    assert data.y_train.shape == (60000,)
    assert data.y_test.shape == (10000,)
    assert data.x_train.dtype == torch.float32
    assert data.y_train.dtype == torch.int64
    assert data.folder == folder


def classes_data(n: int = 240, d: int = 12, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A small learnable problem: the label is the argmax of the first c features, 10% noisy."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, (x[:, :c].argmax(1) + (torch.rand(n, generator=g) < 0.1).long()) % c


def mlp_by_hand(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits of one saved MLP (w{i}: [in, out], b{i}) on x, without dropout: what evaluation
    must compute (inverted dropout needs no scaling at test time)."""
    layers = len([k for k in state if k.startswith("w")])
    for i in range(layers):
        x = x @ state[f"w{i}"] + state[f"b{i}"]
        if i < layers - 1:
            x = torch.relu(x)
    return x
