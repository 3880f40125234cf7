"""What every protocol needs: the torch set-up, the output folder, and reusing models."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from kdlab.config import RunOptions
from kdlab.data.base import Dataset
from kdlab.data.datasets import cache_dir, load_dataset
from kdlab.errors import KdlabError
from kdlab.evaluation import Calibration, Score, scores, shift
from kdlab.io import claimed_settings, package_versions, prepare_out
from kdlab.models import StackedModule, from_states
from kdlab.result import Stage
from kdlab.seeds import derive_seed
from kdlab.training.augment import all_shifts, move
from kdlab.training.checkpoint import Checkpoint
from kdlab.training.engine import (
    EvalResult,
    Monitor,
    SoftTargets,
    TrainingData,
    TrainSpec,
    predict,
    steps_per_epoch,
    train_group,
)
from kdlab.training.store import ModelStore, TrainedModel, model_key

ENGINE_VERSION = 2  # bump when a change to the engine changes trained weights


def setup_torch(opts: RunOptions) -> torch.device:
    """Threads set to the cores we may use; the device asked for (cuda when present on auto)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(opts.threads or cores or 1)
    return device_of(opts.device)


def device_of(name: str) -> torch.device:
    """The device a `--device` value asks for: cuda when present on auto."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise KdlabError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def models_dir(opts: RunOptions) -> Path:
    """Where trained models are stored: `--models-dir`, else the per-user cache (shared by every
    run that does not choose a store; the command line chooses `<out>/models`)."""
    return opts.models_dir or cache_dir() / "models"


def train_spec(data: Dataset, hidden: tuple[int, ...], role: str, seed: int, **fields) -> TrainSpec:
    """One model's training settings: its layer sizes on the data, and its initialisation and
    data order from `role` and `seed`. Without a soft-target term, temperature and T^2 do not
    matter: they are fixed, so that such a model's key (and the stored model) is shared by
    every distillation setting."""
    distils = fields["alpha"] > 0
    return TrainSpec(
        sizes=(data.num_features, *hidden, len(data.classes)),
        init_seed=derive_seed(seed, f"{role}-init"),
        stream_seed=derive_seed(seed, f"{role}-stream"),
        **{
            **fields,
            "temperature": fields["temperature"] if distils else 1.0,
            "t2": fields["t2"] and distils,
        },
    )


@dataclass
class ModelJob:
    """A model a protocol needs: its name, how to train it, and what determines its weights."""

    name: str
    spec: TrainSpec
    identity: dict  # everything besides `spec` that its weights depend on
    seed: int

    @property
    def key(self) -> str:
        spec = asdict(self.spec)
        if spec["arch"] == "mlp":  # the first family: its keys predate the field
            del spec["arch"]
        return model_key({"spec": spec, **self.identity, "engine": ENGINE_VERSION})


def device_kind(device: torch.device) -> str:
    """What the numbers depend on besides the settings: CPU and CUDA draw different random
    streams from one seed, and on the CPU the kernels torch and MKL pick for the instruction
    set (e.g. `cpu-avx2`, `cpu-avx512`) round differently, so one seed trains other weights on
    a CPU of another kind (measured: a teacher's test errors moved by 6 to 21 between kernels)."""
    if device.type != "cpu":
        return device.type
    return f"cpu-{torch.backends.cpu.get_cpu_capability().lower()}"


def data_identity(data: Dataset, device: torch.device) -> dict:
    """What every model's weights depend on besides its `TrainSpec`: the raw files' hashes, the
    normalisation applied to them, and the device kind (`device_kind`)."""
    return {
        "data_sha256": data.hashes,
        "mean": list(data.spec.mean),
        "std": list(data.spec.std),
        "device": device_kind(device),
    }


def taught_by(identity: dict, teacher: TrainedModel) -> dict:
    """A distilled student's identity: its teacher is the teacher's exact weights (their hash),
    not the recipe that trained them."""
    return {**identity, "teacher": teacher.record["weights_sha256"]}


BEST = "best."  # prefix of the best-epoch weights stored beside the final ones


def _split_best(state: dict[str, torch.Tensor]) -> tuple[dict, dict | None]:
    """A stored state as (the final weights, the best-epoch weights or None)."""
    final = {k: v for k, v in state.items() if not k.startswith(BEST)}
    best = {k[len(BEST) :]: v for k, v in state.items() if k.startswith(BEST)}
    return final, best or None


class BestEpoch:
    """Each model's weights at its epoch of lowest validation loss (the first, on ties): early
    stopping without training twice."""

    def __init__(self, num_models: int):
        self.loss = [float("inf")] * num_models
        self.epoch = [0] * num_models
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in range(num_models)]

    def __call__(self, epoch: int, model: StackedModule, val: EvalResult) -> None:
        for k, loss in enumerate(val.loss.tolist()):
            if loss < self.loss[k]:
                self.loss[k], self.epoch[k] = loss, epoch
                self.state[k] = model.state_of(k)  # a copy

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"{k}.{name}": t for k, state in enumerate(self.state) for name, t in state.items()}
        return tensors, {"loss": self.loss, "epoch": self.epoch}

    def restore_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        loss, epoch, n = meta["loss"], meta["epoch"], len(self.loss)
        if not (isinstance(loss, list) and isinstance(epoch, list) and len(loss) == len(epoch) == n):
            raise ValueError("best epochs of another number of models")
        state: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        for key, t in tensors.items():
            k, _, name = key.partition(".")
            if not (k.isdigit() and int(k) < n and name):
                raise ValueError(f"best weights {key!r} of no model here")
            state[int(k)][name] = t
        self.loss, self.epoch, self.state = [float(v) for v in loss], [int(e) for e in epoch], state


def group_memory_bytes(spec: TrainSpec, image_shape: tuple[int, int, int] | None = None) -> int:
    """Rough peak memory of one model in a training group: parameters with their gradient and
    two Adam moments, and the activations, dropout masks and gradients of one batch."""
    if spec.arch == "cnn" and image_shape is not None:
        channels, side = (image_shape[0], *spec.sizes[1:-1]), image_shape[1] * image_shape[2]
        params = sum(a * b * 9 + b for a, b in itertools.pairwise(channels))
        params += channels[-1] * spec.sizes[-1] + spec.sizes[-1]
        # per image: each stage's pre-pooling maps (measured ~10 bytes per value in all) and the input
        maps = sum(c * side // 4**i for i, c in enumerate(channels[1:]))
        return 16 * params + spec.batch_size * (10 * maps + 8 * spec.sizes[0])
    params = sum(a * b + b for a, b in zip(spec.sizes[:-1], spec.sizes[1:]))
    activations = spec.batch_size * (spec.sizes[0] + 4 * sum(spec.sizes[1:]))
    return 4 * (4 * params + 2 * activations)


def views_mb(models: int, rows: int, max_shift: int, classes: int) -> float:
    """The memory (MB) of `Lab.shifted_logits` for `models` on `rows` images: a check before
    anything trains that they fit the budget."""
    return len(all_shifts(max_shift)) * models * rows * classes * 4 / 2**20


def stack(
    models: list[TrainedModel], device: torch.device, image_shape: tuple[int, int, int] | None = None
) -> StackedModule:
    """The models (one architecture) as one stack, for evaluation in a single pass."""
    first = models[0]
    return from_states(first.arch, first.sizes, [m.state for m in models], image_shape, device)


def provenance(config: dict, data_hashes: dict[str, str]) -> dict:
    return {
        "config": config,
        "data_sha256": data_hashes,
        "versions": package_versions(),
        "engine": ENGINE_VERSION,
    }


@dataclass
class Teacher(SoftTargets):
    """A trained teacher ready to teach (its soft targets: see `SoftTargets`), with its logits
    on the test images."""

    model: TrainedModel | None = None
    key: str = ""
    stage: Stage | None = None  # its training (or reuse) in this run
    test_logits: torch.Tensor | None = None  # [N_test, C]


@dataclass
class Lab:
    """The one set-up every protocol works in: the device, the whole data set on it as tensors,
    the model store, and the provenance that every record carries. A protocol declares its
    models (`ModelJob`s on transfer sets) and the lab trains or reuses and evaluates them."""

    opts: RunOptions
    device: torch.device
    data: Dataset
    store: ModelStore
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    provenance: dict | None = None  # set by `claim`, once the protocol's settings are final

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)

    def claim(self, protocol: str, config: dict) -> None:
        """Fix the settings every record carries and claim the output folder (when there is one)
        before any training, so that a wrong folder costs nothing."""
        self.provenance = {**provenance(config, self.data.hashes), "device": device_kind(self.device)}
        if self.opts.out is not None:
            prepare_out(self.opts.out, protocol, claimed_settings(self.provenance))

    @property
    def training(self) -> TrainingData:
        return TrainingData(self.x, self.y, self.num_classes, self.data.image_shape)

    def train(
        self,
        jobs: list[ModelJob],
        transfer: torch.Tensor,
        monitor: Monitor | None = None,
        teacher: SoftTargets | Callable[[], SoftTargets] | None = None,
        keep_best: bool = False,
    ) -> Stage:
        """Reuse the finished models among `jobs` and train the rest on the training rows
        `transfer` (one set of rows, or one per job) in groups as large as the memory budget
        allows, each saved as soon as its group finishes. Distilled jobs learn from `teacher`
        (or from what it returns, called only if a model is to train: costly soft targets are
        then made only when needed); `monitor` is the labelled set of the learning curves
        (default: the test set, which is never used for any choice) and, with `keep_best`, of the
        epoch whose weights each model also keeps for early stopping."""
        assert self.provenance is not None, "claim the run before training"
        self.check_jitter(max(job.spec.jitter for job in jobs))
        began, began_cpu = time.perf_counter(), time.process_time()
        monitor = monitor or Monitor(self.x_test, self.y_test)
        done: dict[int, TrainedModel] = {}
        by_shape: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            stored = None if self.opts.fresh else self.store.load(job.name, job.key)
            if stored is None or (keep_best and "best_epoch" not in stored.record):
                by_shape.setdefault(job.spec.group_key(), []).append(i)
            else:
                final, best = _split_best(stored.state)
                folder = self.store.folder(job.name, job.key)
                done[i] = TrainedModel(
                    job.name, job.spec.arch, job.spec.sizes, final, stored.record, True, folder, best
                )
        if by_shape and callable(teacher):
            teacher = teacher()
        for members in by_shape.values():
            memory = group_memory_bytes(jobs[members[0]].spec, self.data.image_shape)
            size = max(1, self.opts.memory_mb * 2**20 // memory)
            for chunk in (members[i : i + size] for i in range(0, len(members), size)):
                rows = transfer if transfer.dim() == 1 else transfer[chunk]
                trained = self._train_and_save([jobs[i] for i in chunk], rows, monitor, teacher, keep_best)
                done.update(zip(chunk, trained))
        models = [done[i] for i in range(len(jobs))]
        return Stage(models, time.perf_counter() - began, time.process_time() - began_cpu)

    def check_jitter(self, pixels: int) -> None:
        """Refuse, before any training, a jitter that moves the images by their whole height or
        width: every pixel would then be border fill, and nothing of the image would be left."""
        if pixels == 0:
            return
        _, h, w = self.data.image_shape
        if pixels >= min(h, w):
            raise KdlabError(
                f"--jitter {pixels} moves the {h}x{w} images out of their frame: give at most {min(h, w) - 1}"
            )

    def _train_and_save(
        self,
        group: list[ModelJob],
        transfer: torch.Tensor,
        monitor: Monitor,
        teacher: SoftTargets | None,
        keep_best: bool,
    ) -> list[TrainedModel]:
        """One group trained together, each model saved with its record."""
        n, spec0 = transfer.shape[-1], group[0].spec
        distinct = sorted({j.name for j in group})
        names = ", ".join(distinct)
        label = f"{names} ×{len(group) // len(distinct)}" if len(group) > 2 else names
        if len(distinct) > 3:
            label = f"{len(group)} models ({distinct[0]} … {distinct[-1]})"
        total = spec0.epochs * steps_per_epoch(n, spec0.batch_size)
        best = BestEpoch(len(group)) if keep_best else None
        keys = [j.key for j in group]
        checkpoint = Checkpoint(self.store.partial(keys), keys, extra=best, resume=not self.opts.fresh)
        with tqdm(total=total, desc=label, disable=self.opts.quiet, unit="step", leave=False) as bar:
            specs = [j.spec for j in group]
            try:
                model, histories = self.fit(specs, transfer, monitor, teacher, bar.update, best, checkpoint)
            except KdlabError as err:
                checkpoint.remove()  # a rerun of the same settings would diverge again
                raise KdlabError(f"{label}: {err}; nothing of it was stored") from None
            wall = checkpoint.elapsed_s()
        trained = []
        for k, job in enumerate(group):
            record = {
                "name": job.name,
                "key": job.key,
                "spec": asdict(job.spec),
                "identity": job.identity,
                **self.provenance,
                "seed": job.seed,
                "history": histories[k],
                "group": [j.name for j in group],
                "group_wall_time_s": wall,
                **({"resumed_from_epoch": checkpoint.resumed_epoch} if checkpoint.resumed_epoch else {}),
                "samples_per_s": spec0.epochs * n * len(group) / wall,
                "transfer_size": n,
                "device": str(self.x.device),
            }
            state = model.state_of(k)
            if best is not None:
                record["best_epoch"] = best.epoch[k]
                state.update({BEST + name: t for name, t in best.state[k].items()})
            saved = self.store.save(job.name, job.key, state, record)
            final, best_state = _split_best(saved.state)
            folder = self.store.folder(job.name, job.key)
            trained.append(
                TrainedModel(
                    job.name, job.spec.arch, job.spec.sizes, final, saved.record, False, folder, best_state
                )
            )
        checkpoint.remove()
        self.store.prune_partials()
        if not self.opts.quiet:
            resumed = f" (resumed at epoch {checkpoint.resumed_epoch})" if checkpoint.resumed_epoch else ""
            print(f"trained {label} in {wall:.1f} s{resumed}")
        return trained

    def fit(
        self,
        specs: list[TrainSpec],
        transfer: torch.Tensor,
        monitor: Monitor,
        teacher: SoftTargets | None = None,
        on_step: Callable[[], None] | None = None,
        on_epoch: Callable[[int, StackedModule, EvalResult], None] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> tuple[StackedModule, list[list[dict]]]:
        """Models trained together on the Lab's training data, not stored (`train` stores them;
        a search's trials report each epoch instead)."""
        return train_group(specs, self.training, transfer, monitor, teacher, on_step, on_epoch, checkpoint)

    def teacher(self, job: ModelJob, transfer: torch.Tensor, monitor: Monitor | None = None) -> Teacher:
        """The teacher of `job`, trained (or reused), with its logits computed once."""
        stage = self.train([job], transfer, monitor)
        net = stack(stage.models, self.device, self.data.image_shape)
        logits, test_logits = predict(net, self.x)[0], predict(net, self.x_test)[0]
        return Teacher(logits, net, model=stage.models[0], key=job.key, stage=stage, test_logits=test_logits)

    def logits(self, models: list[TrainedModel], x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [K, N, C] of `models` (one architecture) on `x` (default: the test images)."""
        return predict(stack(models, self.device, self.data.image_shape), self.x_test if x is None else x)

    def shifted_logits(self, models: list[TrainedModel], rows: torch.Tensor, max_shift: int) -> torch.Tensor:
        """Logits [V, K, R, C] of `models` on the training rows `rows` moved by each of the V
        shifts the jitter draws (in `all_shifts` order): consistent soft targets (the teacher
        sees what the student sees) computed once, instead of a teacher's forward pass per
        moved batch."""
        x, net, views = self.x[rows].unsqueeze(0), stack(models, self.device, self.data.image_shape), []
        for dy, dx in all_shifts(max_shift):
            shifts = torch.tensor([dy, dx], device=self.device).view(2, 1, 1).expand(2, 1, len(rows))
            views.append(predict(net, move(x, self.data.image_shape, shifts)[0]))
        return torch.stack(views)

    def evaluate(
        self,
        models: list[TrainedModel],
        on: tuple[torch.Tensor, torch.Tensor] | None = None,
        omit: tuple[int, ...] = (),
        shifts: list[float] | None = None,
    ) -> list[Score]:
        """Each model scored on the labelled set `on` (default: the test set); with `omit`,
        after adding its shift (default 0) to the logits of those classes."""
        x, y = on if on is not None else (self.x_test, self.y_test)
        return scores(self.logits(models, x), y, self.num_classes, omit, shifts)

    def calibrate(
        self,
        models: list[TrainedModel],
        omit: tuple[int, ...],
        strategies: tuple[str, ...],
        given: Calibration,
    ) -> dict[str, list[float | None]]:
        """Each strategy's shift of the classes `omit` for every model (None where prior
        matching finds none)."""
        test = self.logits(models)
        val = None if given.val is None else self.logits(models, given.val[0])
        return {
            strategy: [
                shift(strategy, omit, (test[k], self.y_test), None if val is None else val[k], given)
                for k in range(len(models))
            ]
            for strategy in strategies
        }


def open_lab(opts: RunOptions, dataset: str) -> Lab:
    """Threads and device set, the data set loaded onto the device, the model store opened."""
    device = setup_torch(opts)
    data = load_dataset(dataset, opts.data_dir, opts.download, opts.quiet)
    return Lab(
        opts=opts,
        device=device,
        data=data,
        store=ModelStore(models_dir(opts)),
        x=data.x_train.to(device),
        y=data.y_train.to(device),
        x_test=data.x_test.to(device),
        y_test=data.y_test.to(device),
    )
