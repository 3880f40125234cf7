"""What every protocol needs: the torch set-up, the output folder, seeds, and reusing models."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from kdlab import KdlabError
from kdlab.config import RunOptions
from kdlab.io import atomic_write_json, package_versions
from kdlab.models import StackedModule, from_states
from kdlab.training.engine import EvalResult, TrainSpec, steps_per_epoch, train_group
from kdlab.training.store import ModelStore, model_key

ENGINE_VERSION = 1  # bump when a change to the engine changes trained weights
MARKER = "kdlab-run.json"


def setup_torch(opts: RunOptions) -> torch.device:
    """Threads set to the cores we may use; the device asked for (cuda when present on auto)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(opts.threads or cores or 1)
    if opts.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise KdlabError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(opts.device)


def prepare_out(out: Path, protocol: str, dataset: str) -> None:
    """Claim `out` for this experiment; refuse a folder holding anything else."""
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise KdlabError(f"output path {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            owner = json.loads(marker.read_text())
        except (OSError, ValueError):
            raise KdlabError(
                f"output folder {out} holds files that are not a kdlab run; choose another --out"
            ) from None
        if owner.get("protocol") != protocol or owner.get("dataset") != dataset:
            raise KdlabError(
                f"output folder {out} holds results of another experiment "
                f"({owner.get('protocol')} on {owner.get('dataset')}); choose another --out"
            )
    atomic_write_json(marker, {"protocol": protocol, "dataset": dataset})


def derive_seed(seed: int, role: str) -> int:
    """A 63-bit seed for one role (init, data order) of one run: stable across versions."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{role}".encode()).digest()[:8], "big") >> 1


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


@dataclass
class TrainedModel:
    name: str
    arch: str
    sizes: tuple[int, ...]
    state: dict[str, torch.Tensor]
    record: dict
    reused: bool
    folder: Path
    best: dict[str, torch.Tensor] | None = None  # weights at the epoch of lowest validation loss


BEST = "best."  # prefix of the best-epoch weights stored beside the final ones


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


def train_or_load(
    jobs: list[ModelJob],
    store: ModelStore,
    opts: RunOptions,
    x: torch.Tensor,
    y: torch.Tensor,
    transfer: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    num_classes: int,
    provenance: dict,
    teacher: StackedModule | None = None,
    image_shape: tuple[int, int, int] | None = None,
    keep_best: bool = False,
) -> list[TrainedModel]:
    """Reuse the finished models among `jobs` and train the rest in groups as large as the
    memory budget allows; each model is saved as soon as its group finishes. `transfer` is
    one set of rows for every job, or one row per job ([len(jobs), N]). `teacher` and
    `image_shape` are needed by jittered models and the cnn (see `train_group`). With
    `keep_best`, each model also keeps its weights at the epoch of lowest validation loss."""
    done: dict[int, TrainedModel] = {}
    missing = []
    for i, job in enumerate(jobs):
        stored = None if opts.fresh else store.load(job.name, job.key)
        if stored is None or (keep_best and "best_epoch" not in stored.record):
            missing.append(i)
        else:
            final = {k: v for k, v in stored.state.items() if not k.startswith(BEST)}
            best = {k[len(BEST) :]: v for k, v in stored.state.items() if k.startswith(BEST)}
            done[i] = TrainedModel(
                job.name,
                job.spec.arch,
                job.spec.sizes,
                final,
                stored.record,
                True,
                store.folder(job.name, job.key),
                best or None,
            )
    n = transfer.shape[-1]

    def train_and_save(indices: list[int]) -> list[TrainedModel]:
        group = [jobs[i] for i in indices]
        spec0 = group[0].spec
        names = ", ".join(sorted({j.name for j in group}))
        label = f"{names} ×{len(group) // len({j.name for j in group})}" if len(group) > 2 else names
        total = spec0.epochs * steps_per_epoch(n, spec0.batch_size)
        best = BestEpoch(len(group)) if keep_best else None
        with tqdm(total=total, desc=label, disable=opts.quiet, unit="step", leave=False) as bar:
            start = time.perf_counter()
            model, histories = train_group(
                [j.spec for j in group],
                x,
                y,
                transfer if transfer.dim() == 1 else transfer[indices],
                teacher_logits,
                x_val,
                y_val,
                num_classes,
                on_step=bar.update,
                teacher=teacher,
                image_shape=image_shape,
                on_epoch=best,
            )
            wall = time.perf_counter() - start
        trained = []
        for k, job in enumerate(group):
            record = {
                "name": job.name,
                "key": job.key,
                "spec": asdict(job.spec),
                "identity": job.identity,
                **provenance,
                "seed": job.seed,
                "history": histories[k],
                "group": [j.name for j in group],
                "group_wall_time_s": wall,
                "samples_per_s": spec0.epochs * n * len(group) / wall,
                "transfer_size": n,
                "device": str(x.device),
            }
            state = model.state_of(k)
            saved = dict(state)
            if best is not None:
                record["best_epoch"] = best.epoch[k]
                saved.update({BEST + name: t for name, t in best.state[k].items()})
            folder = store.save(job.name, job.key, saved, record)
            trained.append(
                TrainedModel(
                    job.name,
                    job.spec.arch,
                    job.spec.sizes,
                    state,
                    record,
                    False,
                    folder,
                    best.state[k] if best is not None else None,
                )
            )
        if not opts.quiet:
            print(f"trained {label} in {wall:.1f} s")
        return trained

    by_shape: dict[tuple, list[int]] = {}
    for i in missing:
        by_shape.setdefault(jobs[i].spec.group_key(), []).append(i)
    for members in by_shape.values():
        size = max(1, opts.memory_mb * 2**20 // group_memory_bytes(jobs[members[0]].spec, image_shape))
        for chunk in (members[i : i + size] for i in range(0, len(members), size)):
            done.update(zip(chunk, train_and_save(chunk)))
    return [done[i] for i in range(len(jobs))]


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
    }
