"""The mythical-digit protocol as a typical PyTorch implementation would write it, to compare
kdlab's engine with: a per-sample `Dataset` behind a shuffling `DataLoader` (batch 64, as
most published reproductions use), `nn.Sequential` models with `nn.Dropout`, `torch.optim.Adam`,
the teacher's soft targets computed batch by batch, one model at a time, and the test set
scored after every epoch.

It trains what `kdlab run mythical-digit` trains, with the same widths, dropout, T, alpha,
learning rate and epochs: the teacher 784-1200-1200-10, then four 784-300-300-10 students
(hard labels and distilled, on all the data and without the 3s). It prints the wall time of
each model and of the whole run, and the test errors, so that its accuracy can be checked to be
of the same kind as kdlab's.

    python bench/typical.py --data-dir ../shared/data [--epochs 10] [--batch-size 64]
    python bench/typical.py --epochs 1 --subset 2000   # a smoke run (the tests' one)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdlab.data.datasets import load_dataset

OMITTED = 3


class Images(Dataset):
    """Image i and its label, one at a time, as a per-sample data set serves them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def mlp(hidden: tuple[int, ...], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def kd_loss(
    student: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, t: float, alpha: float
) -> torch.Tensor:
    """The paper's loss, as such scripts write it: T^2-scaled KL at T plus the hard labels."""
    soft = F.kl_div(
        F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), log_target=True, reduction="batchmean"
    )
    return alpha * t * t * soft + (1 - alpha) * F.cross_entropy(student, y)


@torch.no_grad()
def test_errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    model.eval()
    wrong = sum(int((model(xb).argmax(1) != yb).sum()) for xb, yb in DataLoader(Images(x, y), 1000))
    model.train()
    return wrong


def train(
    model: nn.Module,
    data: Dataset,
    test: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    batch: int,
    lr: float,
    teacher: nn.Module | None = None,
    t: float = 4.0,
    alpha: float = 0.9,
) -> list[int]:
    """Train one model, distilling from `teacher` if given; its test errors after each epoch."""
    loader = DataLoader(data, batch_size=batch, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    errors = []
    for _ in range(epochs):
        for xb, yb in loader:
            logits = model(xb)
            if teacher is None:
                loss = F.cross_entropy(logits, yb)
            else:
                with torch.no_grad():
                    soft = teacher(xb)
                loss = kd_loss(logits, soft, yb, t, alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        errors.append(test_errors(model, *test))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--subset", type=int, default=0, help="the first N training images (0: all)")
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    data = load_dataset("mnist", args.data_dir, quiet=True)
    x, y = data.x_train[: args.subset or None], data.y_train[: args.subset or None]
    full, no3 = Images(x, y), Images(x[y != OMITTED], y[y != OMITTED])
    test = (data.x_test, data.y_test)
    print(f"{torch.get_num_threads()} threads, batch {args.batch_size}, {args.epochs} epochs\n")
    print("| model | seconds | test errors |\n|---|---:|---:|")
    timed = time.perf_counter()
    teacher = mlp((1200, 1200), 0.5)
    errors = train(teacher, full, test, args.epochs, args.batch_size, 1e-3)
    print(f"| teacher | {time.perf_counter() - timed:.1f} | {errors[-1]} |")
    teacher.eval()
    for name, transfer, taught in (
        ("Hard", full, False),
        ("KD", full, True),
        ("Hard No3", no3, False),
        ("KD No3", no3, True),
    ):
        timed = time.perf_counter()
        errors = train(
            mlp((300, 300), 0.5),
            transfer,
            test,
            args.epochs,
            args.batch_size,
            1e-3,
            teacher if taught else None,
        )
        print(f"| {name} | {time.perf_counter() - timed:.1f} | {errors[-1]} |")
    print(f"\nwhole run: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
