"""What the group benchmarks share: their command line, the data and a teacher's logits, and a
warm-up before anything is timed."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from kdlab.config import RunOptions
from kdlab.data.base import Dataset
from kdlab.data.datasets import load_dataset
from kdlab.protocols.common import setup_torch
from kdlab.training.engine import Monitor, SoftTargets, TrainingData, TrainSpec, train_group


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every group benchmark takes; a script adds its own."""
    out = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    out.add_argument("--batch-size", type=int, default=256)
    return out


def setup(args: argparse.Namespace) -> tuple[Dataset, TrainingData, SoftTargets]:
    """MNIST as the engine trains on it, and random teacher logits for the distilling models
    (their values do not change the time)."""
    setup_torch(RunOptions())
    data = load_dataset("mnist", args.data_dir, quiet=True)
    logits = torch.randn(len(data.y_train), 10, generator=torch.Generator().manual_seed(0))
    return data, TrainingData(data.x_train, data.y_train, 10, data.image_shape), SoftTargets(logits)


def warm_up(group: list[TrainSpec], train: TrainingData, monitor: Monitor, teacher: SoftTargets) -> None:
    """Four steps of the group, so that the timed run does not pay for first calls."""
    rows = torch.arange(4 * group[0].batch_size)
    train_group(group, train, rows, monitor, teacher)
