"""The training loop: K same-shaped models trained together, each with its own seed and settings.

The whole data set is one tensor; each model walks its own permutation of the transfer set
(indices gathered from that one tensor), draws its own jitter and dropout masks, and has its
own temperature, alpha and learning rate. A single model is a group of one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdlab.errors import KdlabError
from kdlab.models import StackedModule, build_model
from kdlab.training.augment import translate, view_index
from kdlab.training.checkpoint import Checkpoint, matched
from kdlab.training.loss import kd_loss
from kdlab.training.optim import StackedAdam, StackedSGD, make_optimizer
from kdlab.training.schedule import lr_factor


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
    stream_seed: int  # data order, jitter and dropout masks
    input_dropout: float = 0.0  # (group) dropout on the input pixels
    max_norm: float = 0.0  # (group) cap on the L2 norm of each unit's incoming weights; 0: none
    jitter: int = 0  # (group) random translation of every training image by up to this many pixels
    optimizer: str = "adam"  # (group) adam, or sgd / nesterov with momentum
    momentum: float = 0.0  # (group) momentum of sgd and nesterov
    schedule: str = "constant"  # (group) learning-rate schedule over all steps: constant, cosine, linear
    arch: str = "mlp"  # (group) model family: mlp, or cnn for images

    def group_key(self) -> tuple:
        return (
            self.sizes,
            self.dropout,
            self.epochs,
            self.batch_size,
            self.input_dropout,
            self.max_norm,
            self.jitter,
            self.optimizer,
            self.momentum,
            self.schedule,
            self.arch,
        )


@dataclass(frozen=True)
class TrainingData:
    """Every training image as one tensor on the device, with its labels; models pick their
    rows from it. Jitter and the cnn need the image shape."""

    x: torch.Tensor  # [N, D]
    y: torch.Tensor  # [N]
    num_classes: int
    image_shape: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Monitor:
    """The labelled set every epoch is scored on: the learning curves, and early stopping."""

    x: torch.Tensor
    y: torch.Tensor
    name: str = "test set"


@dataclass
class SoftTargets:
    """A teacher as students see it: its logits on every training image, computed once (exact
    for images used as stored); for moved images, which have soft targets of their own, either
    its logits on every transfer image moved by each shift the jitter can draw, computed once
    (`views` [V, R, C]: row r of the training data at `position[r]`, or at r without
    `position`; shift v as `view_index` numbers it), or the network itself (a stack of one),
    run on every moved batch."""

    logits: torch.Tensor | None  # [N, C]
    net: StackedModule | None = None
    views: torch.Tensor | None = None
    position: torch.Tensor | None = None  # [N]: each training row's index in `views`
    max_shift: int = 0

    def ready(self, moved: bool) -> bool:
        """Whether it can teach students whose images move (or not)."""
        if moved:
            return self.views is not None or self.net is not None
        return self.logits is not None

    def of(
        self, rows: torch.Tensor, xb: torch.Tensor, shifts: torch.Tensor | None, temperature: torch.Tensor
    ) -> torch.Tensor:
        """The soft targets [K, B, C] of a batch, as logits: the training rows [K, B], seen as
        `xb` (moved by `shifts` [2, K, B], or None), for students of `temperature` [K] (one
        teacher's logits serve every T)."""
        if shifts is None:
            return take(self.logits, rows)
        if self.views is not None:
            return self.views[view_index(shifts, self.max_shift), self.view_rows(rows)]
        return _teacher_on(self.net, xb)

    def view_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Each training row's index in `views`."""
        return rows if self.position is None else take(self.position, rows)


@dataclass
class EnsembleTargets(SoftTargets):
    """M teachers as one (the paper's section 4): at each student's temperature T, the
    arithmetic mean of the members' probabilities at T, given to the loss as logits (T times
    the log of the mean, whose softmax at T is the mean itself). `logits` are the members'
    [M, N, C] on every training image; `views` [V, M, R, C] theirs on the transfer set's R
    images moved by each of the V shifts, so that a moved image gets the members' targets on
    the moved image itself at no cost per step. Without views, a moved image gets the targets
    of the stored image it came from."""

    def ready(self, moved: bool) -> bool:
        return self.logits is not None

    @torch.no_grad()
    def of(
        self, rows: torch.Tensor, xb: torch.Tensor, shifts: torch.Tensor | None, temperature: torch.Tensor
    ) -> torch.Tensor:
        if shifts is None or self.views is None:
            z = self.logits[:, rows]  # [M, K, B, C]
        else:
            z = self.views[view_index(shifts, self.max_shift), :, self.view_rows(rows)].permute(2, 0, 1, 3)
        t = temperature.view(1, -1, 1, 1)
        log_mean = torch.logsumexp(F.log_softmax(z / t, dim=-1), dim=0) - math.log(z.shape[0])
        return temperature.view(-1, 1, 1) * log_mean


@dataclass
class EvalResult:
    """Metrics of K models on one labelled set."""

    loss: torch.Tensor  # [K] mean cross-entropy
    accuracy: torch.Tensor  # [K] fraction correct
    per_class: torch.Tensor  # [K, C] fraction correct per true class; NaN: no image of the class
    errors: torch.Tensor  # [K] count of wrong predictions


@torch.no_grad()
def predict(model: StackedModule, x: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Logits [K, N, C] of every model on inputs [N, D], without dropout, in chunks of images
    small enough for the family's activations."""
    chunk = chunk or model.eval_chunk
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
        per_class=per_class / counts,  # 0/0: NaN, "no data", for a class absent from y
        errors=(n - correct.sum(1)).to(torch.int64),
    )


def train_group(
    specs: list[TrainSpec],
    data: TrainingData,
    transfer: torch.Tensor,
    monitor: Monitor,
    teacher: SoftTargets | None = None,
    on_step: Callable[[], None] | None = None,
    on_epoch: Callable[[int, StackedModule, EvalResult], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> tuple[StackedModule, list[list[dict]]]:
    """Train the models of `specs` together on the rows `transfer` of the training data: one
    set of rows [N] for every model, or each model its own rows [K, N] (e.g. each seed its own
    sample). Models with alpha > 0 distil from `teacher`. Returns the trained stack and, per
    model, a history with one dict of metrics (on `monitor`) per epoch. `on_epoch(epoch, model,
    val)` sees the models (in eval mode) and their scores on `monitor` after each epoch, e.g. to
    report a metric to an early-stopping scheduler or to keep each model's best weights. With
    `checkpoint`, training resumes from its last save, and saves at the end of an epoch when one
    is due: the weights come out the same as without.
    """
    first = specs[0]
    if any(s.group_key() != first.group_key() for s in specs):
        raise ValueError("a group needs one architecture, regularisation, optimiser, epochs and batch size")
    distils = any(s.alpha > 0 for s in specs)
    if distils and (teacher is None or not teacher.ready(first.jitter > 0)):
        raise ValueError(
            "alpha > 0 needs the teacher's logits, or its views or the teacher itself when jittering"
        )
    x, y, image_shape = data.x, data.y, data.image_shape
    if first.jitter and image_shape is None:
        raise ValueError("jitter needs the image shape")
    device = x.device
    num_models, n = len(specs), transfer.shape[-1]
    rows = transfer.expand(num_models, n) if transfer.dim() == 1 else transfer
    if rows.shape[0] != num_models:
        raise ValueError("per-model transfer rows need one row set per model")
    model = build_model(first.arch, first.sizes, num_models, first.dropout, first.input_dropout, image_shape)
    model.reset_parameters([torch.Generator().manual_seed(s.init_seed) for s in specs])  # on the CPU:
    model.to(device)  # the same initial weights on every device
    generators = [torch.Generator(device).manual_seed(s.stream_seed) for s in specs]
    lrs = [s.lr for s in specs]
    optimizer = make_optimizer(first.optimizer, list(model.parameters()), lrs, first.momentum)
    total_steps, step = first.epochs * steps_per_epoch(n, first.batch_size), 0
    temperature = torch.tensor([s.temperature for s in specs], device=device)
    alpha = torch.tensor([s.alpha for s in specs], device=device)
    t2 = torch.tensor([s.t2 for s in specs], device=device)
    histories: list[list[dict]] = [[] for _ in specs]
    begin = 0
    if checkpoint is not None and (saved := checkpoint.load()) is not None:
        begin, step, histories = _resume(
            saved, checkpoint, model, optimizer, generators, first.epochs, total_steps
        )
        for _ in range(step if on_step is not None else 0):
            on_step()

    for epoch in range(begin, first.epochs):
        start_time = time.perf_counter()
        model.train()
        order = torch.stack(
            [r[torch.randperm(n, generator=g, device=device)] for r, g in zip(rows, generators)]
        )  # [K, N]: each model's own data order
        loss_sum = torch.zeros(num_models, dtype=torch.float64, device=device)
        correct = torch.zeros(num_models, dtype=torch.int64, device=device)
        for batch in batches(n, first.batch_size):
            idx = order[:, batch]  # [K, B]
            yb, xb = take(y, idx), take(x, idx)
            shifts = None
            if first.jitter:
                xb, shifts = translate(xb, image_shape, first.jitter, generators)
            soft = teacher.of(idx, xb, shifts, temperature) if distils else None
            logits = model(xb, generators)
            loss = kd_loss(logits, yb, soft, temperature, alpha, t2)
            optimizer.zero_grad()
            loss.sum().backward()  # models share no parameters: each gets its own gradient
            optimizer.step(lr_factor(first.schedule, step, total_steps))
            step += 1
            if first.max_norm > 0:
                model.max_norm_(first.max_norm)
            loss_sum += loss.detach() * idx.shape[1]
            correct += (logits.detach().argmax(-1) == yb).sum(1)
            if on_step is not None:
                on_step()
        train_time = time.perf_counter() - start_time
        _stop_if_diverged(loss_sum, epoch, lrs)
        model.eval()
        val = score(predict(model, monitor.x), monitor.y, data.num_classes)
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
            on_epoch(epoch + 1, model, val)
        if checkpoint is not None and epoch + 1 < first.epochs and checkpoint.due():
            tensors = {
                **{f"param.{i}": p for i, p in enumerate(model.parameters())},
                **{f"optim.{i}": t for i, t in enumerate(optimizer.state_tensors())},
                **{f"generator.{i}": g.get_state() for i, g in enumerate(generators)},
            }
            checkpoint.save(tensors, {"epoch": epoch + 1, "step": step, "histories": histories})
    return model, histories


def _stop_if_diverged(loss_sum: torch.Tensor, epoch: int, lrs: list[float]) -> None:
    """Stop at the first epoch whose training loss is not finite: the weights are then NaN or
    infinite, and every later epoch would be lost time."""
    bad = [k for k, v in enumerate(loss_sum.tolist()) if not math.isfinite(v)]
    if bad:
        which = f"model {bad[0] + 1} of {len(lrs)}, " if len(lrs) > 1 else ""
        raise KdlabError(
            f"training diverged: the loss was {loss_sum[bad[0]].item()} in epoch {epoch + 1} "
            f"({which}learning rate {lrs[bad[0]]:g}); a smaller learning rate may train it"
        )


def _resume(
    saved: tuple[dict[str, torch.Tensor], dict],
    checkpoint: Checkpoint,
    model: StackedModule,
    optimizer: StackedAdam | StackedSGD,
    generators: list[torch.Generator],
    epochs: int,
    total_steps: int,
) -> tuple[int, int, list[list[dict]]]:
    """The group's state put back from a save: (epoch, step, histories) to go on from, or a
    fresh start (0, 0, empty) with a warning when the save does not fit these models; nothing
    is changed until all of it has been checked."""
    tensors, meta = saved
    try:
        epoch, step, histories = meta["epoch"], meta["step"], meta["histories"]
        whole = isinstance(epoch, int) and isinstance(step, int)
        if not (whole and 0 < epoch < epochs and step == epoch * (total_steps // epochs)):
            raise ValueError(f"epoch {epoch!r} of {epochs}, step {step!r} of {total_steps}")
        if not (isinstance(histories, list) and len(histories) == len(generators)):
            raise ValueError("learning curves of another number of models")
        if any(not isinstance(h, list) or len(h) != epoch for h in histories):
            raise ValueError(f"learning curves not {epoch} epochs long")
        params = matched(list(model.parameters()), tensors, "param.")
        moments = matched(optimizer.state_tensors(), tensors, "optim.")
        states = matched([g.get_state() for g in generators], tensors, "generator.")
        checkpoint.restore_extra(tensors, meta)
    except (KeyError, TypeError, ValueError) as err:
        warnings.warn(
            f"{checkpoint.path} does not fit these models ({err}); training from epoch 0", stacklevel=2
        )
        return 0, 0, [[] for _ in generators]
    with torch.no_grad():
        for target, src in zip([*model.parameters(), *optimizer.state_tensors()], [*params, *moments]):
            target.copy_(src)
    for gen, state in zip(generators, states):
        gen.set_state(state)
    checkpoint.resumed(meta)
    return epoch, step, histories


@torch.no_grad()
def _teacher_on(teacher: StackedModule, xb: torch.Tensor) -> torch.Tensor:
    """The teacher's logits [K, B, C] on a batch of inputs [K, B, D] (all K at once)."""
    k, b, d = xb.shape
    return teacher(xb.reshape(1, k * b, d)).view(k, b, -1)


def take(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """t[rows]: the rows [K, B] of t [N, ...] as [K, B, ...], the same copy by index_select,
    which on a CPU is several times faster than advanced indexing (each model's own batch is
    gathered at every step)."""
    return t.index_select(0, rows.reshape(-1)).view(*rows.shape, *t.shape[1:])


ALIGN = 16  # rows: 16 x 4 bytes, the 64-byte alignment of a tensor of its own


def batches(n: int, batch_size: int) -> list[slice]:
    """The batches of one pass over n rows in order: `batch_size` at a time, the last one cut
    to a multiple of 16 rows (at most 15 rows wait for the next epoch's order; a set of fewer
    than 16 rows is one batch). Why: each model's slab of every product in a group then starts
    64 bytes after the last, as a model's own tensors do, so MKL rounds a model in a group as it
    rounds it alone (bench/group_position.py: a batch of 109 rows does not)."""
    if n < ALIGN:
        return [slice(0, n)]
    out = [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    last = out.pop()
    rows = (last.stop - last.start) // ALIGN * ALIGN
    return [*out, slice(last.start, last.start + rows)] if rows else out


def steps_per_epoch(n: int, batch_size: int) -> int:
    return len(batches(n, batch_size))
