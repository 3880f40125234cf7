"""What every protocol needs: the torch set-up, the output folder, seeds, and reusing models."""

from __future__ import annotations

import hashlib
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
from kdlab.models import StackedMLP
from kdlab.training.engine import TrainSpec, steps_per_epoch, train_group
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

    @property
    def key(self) -> str:
        return model_key({"spec": asdict(self.spec), **self.identity, "engine": ENGINE_VERSION})


@dataclass
class TrainedModel:
    name: str
    sizes: tuple[int, ...]
    state: dict[str, torch.Tensor]
    record: dict
    reused: bool
    folder: Path


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
) -> dict[str, TrainedModel]:
    """Reuse the finished models among `jobs`, train the rest as one group, save each at once."""
    done: dict[str, TrainedModel] = {}
    missing = []
    for job in jobs:
        stored = None if opts.fresh else store.load(job.name, job.key)
        if stored is None:
            missing.append(job)
        else:
            done[job.name] = TrainedModel(
                job.name,
                job.spec.sizes,
                stored.state,
                stored.record,
                True,
                store.folder(job.name, job.key),
            )
    if missing:
        spec0 = missing[0].spec
        total = spec0.epochs * steps_per_epoch(len(transfer), spec0.batch_size)
        names = ", ".join(j.name for j in missing)
        with tqdm(total=total, desc=names, disable=opts.quiet, unit="step", leave=False) as bar:
            start = time.perf_counter()
            model, histories = train_group(
                [j.spec for j in missing],
                x,
                y,
                transfer,
                teacher_logits,
                x_val,
                y_val,
                num_classes,
                on_step=bar.update,
            )
            wall = time.perf_counter() - start
        for k, job in enumerate(missing):
            record = {
                "name": job.name,
                "key": job.key,
                "spec": asdict(job.spec),
                "identity": job.identity,
                **provenance,
                "history": histories[k],
                "group": [j.name for j in missing],
                "group_wall_time_s": wall,
                "samples_per_s": spec0.epochs * len(transfer) * len(missing) / wall,
                "transfer_size": len(transfer),
                "device": str(x.device),
            }
            state = model.state_of(k)
            folder = store.save(job.name, job.key, state, record)
            done[job.name] = TrainedModel(job.name, job.spec.sizes, state, record, False, folder)
        if not opts.quiet:
            print(f"trained {names} in {wall:.1f} s")
    return {job.name: done[job.name] for job in jobs}


def stack(models: list[TrainedModel], device: torch.device) -> StackedMLP:
    """The models (one architecture) as one stack, for evaluation in a single pass."""
    return StackedMLP.from_states(models[0].sizes, [m.state for m in models], device=device)


def provenance(config: dict, seed: int, data_hashes: dict[str, str]) -> dict:
    return {
        "config": config,
        "seed": seed,
        "data_sha256": data_hashes,
        "versions": package_versions(),
    }
