"""The training loop: K same-shaped models trained together, each with its own seed and settings.

The whole data set is one tensor; each model walks its own permutation of the transfer set
(indices gathered from that one tensor), draws its own dropout masks, and has its own
temperature, alpha and learning rate. A single model is a group of one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdlab.models import StackedMLP
from kdlab.training.loss import kd_loss
from kdlab.training.optim import StackedAdam


@dataclass(frozen=True)
class TrainSpec:
    """One model to train. Models in a group share the fields marked (group)."""

    sizes: tuple[int, ...]  # (group) layer widths, input to output
    dropout: float  # (group)
    epochs: int  # (group)
    batch_size: int  # (group)
    lr: float
    alpha: float  # weight of the soft-target term; 0 trains on hard labels only
    temperature: float
    t2: bool  # scale the soft-target term by T^2
    init_seed: int  # initial weights
    stream_seed: int  # data order and dropout masks

    def group_key(self) -> tuple:
        return (self.sizes, self.dropout, self.epochs, self.batch_size)


@dataclass
class EvalResult:
    """Metrics of K models on one labelled set."""

    loss: torch.Tensor  # [K] mean cross-entropy
    accuracy: torch.Tensor  # [K] fraction correct
    per_class: torch.Tensor  # [K, C] fraction correct per true class
    errors: torch.Tensor  # [K] count of wrong predictions


@torch.no_grad()
def predict(model: StackedMLP, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Logits [K, N, C] of every model on inputs [N, D], without dropout."""
    outputs = []
    for start in range(0, len(x), chunk):
        xb = x[start : start + chunk]
        outputs.append(model(xb.unsqueeze(0).expand(model.num_models, *xb.shape)))
    return torch.cat(outputs, dim=1)


def score(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> EvalResult:
    """Loss, accuracy and per-class accuracy of logits [K, N, C] against labels [N]."""
    k, n, c = logits.shape
    loss = F.cross_entropy(logits.reshape(k * n, c), y.repeat(k), reduction="none").view(k, n).mean(1)
    correct = (logits.argmax(-1) == y).to(torch.float64)  # [K, N]
    counts = torch.bincount(y, minlength=num_classes).to(torch.float64)
    per_class = torch.zeros(k, num_classes, dtype=torch.float64, device=logits.device)
    per_class.index_add_(1, y, correct)
    return EvalResult(
        loss=loss,
        accuracy=correct.mean(1),
        per_class=per_class / counts.clamp(min=1),
        errors=(n - correct.sum(1)).to(torch.int64),
    )


def train_group(
    specs: list[TrainSpec],
    x: torch.Tensor,
    y: torch.Tensor,
    transfer: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    num_classes: int,
    on_step: Callable[[], None] | None = None,
    on_epoch: Callable[[int, StackedMLP], None] | None = None,
) -> tuple[StackedMLP, list[list[dict]]]:
    """Train the models of `specs` together on the rows `transfer` of (x, y).

    `teacher_logits` [N, C] are the teacher's outputs on x, computed once (exact: no
    augmentation); models with alpha > 0 distil from them. Returns the trained stack and,
    per model, a history with one dict of metrics per epoch. `on_epoch(epoch, model)` sees the
    models (in eval mode) after each epoch, e.g. to report a metric to an early-stopping scheduler.
    """
    first = specs[0]
    if any(s.group_key() != first.group_key() for s in specs):
        raise ValueError("a group needs one architecture, dropout, epoch count and batch size")
    if teacher_logits is None and any(s.alpha > 0 for s in specs):
        raise ValueError("alpha > 0 needs teacher logits")
    device = x.device
    num_models, n = len(specs), len(transfer)
    model = StackedMLP(first.sizes, num_models, first.dropout)  # initialised on the CPU: the same
    model.reset_parameters([torch.Generator().manual_seed(s.init_seed) for s in specs])  # on every device
    model.to(device)
    generators = [torch.Generator(device).manual_seed(s.stream_seed) for s in specs]
    optimizer = StackedAdam(list(model.parameters()), [s.lr for s in specs])
    temperature = torch.tensor([s.temperature for s in specs], device=device)
    alpha = torch.tensor([s.alpha for s in specs], device=device)
    t2 = torch.tensor([s.t2 for s in specs], device=device)
    histories: list[list[dict]] = [[] for _ in specs]

    for epoch in range(first.epochs):
        start_time = time.perf_counter()
        model.train()
        order = torch.stack(
            [transfer[torch.randperm(n, generator=g, device=device)] for g in generators]
        )  # [K, N]: each model's own data order
        loss_sum = torch.zeros(num_models, dtype=torch.float64, device=device)
        correct = torch.zeros(num_models, dtype=torch.int64, device=device)
        for start in range(0, n, first.batch_size):
            idx = order[:, start : start + first.batch_size]  # [K, B]
            yb = y[idx]
            logits = model(x[idx], generators)
            soft = teacher_logits[idx] if teacher_logits is not None else None
            loss = kd_loss(logits, yb, soft, temperature, alpha, t2)
            optimizer.zero_grad()
            loss.sum().backward()  # models share no parameters: each gets its own gradient
            optimizer.step()
            loss_sum += loss.detach() * idx.shape[1]
            correct += (logits.detach().argmax(-1) == yb).sum(1)
            if on_step is not None:
                on_step()
        train_time = time.perf_counter() - start_time
        model.eval()
        val = score(predict(model, x_val), y_val, num_classes)
        for k in range(num_models):
            histories[k].append(
                {
                    "epoch": epoch + 1,
                    "train_loss": float(loss_sum[k] / n),
                    "train_acc": float(correct[k]) / n,
                    "val_loss": float(val.loss[k]),
                    "val_acc": float(val.accuracy[k]),
                    "seconds": train_time,
                }
            )
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
    return model, histories


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)
