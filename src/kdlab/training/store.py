"""Finished models on disk, content-addressed: a rerun reuses every model whose key it finds.

A model's key hashes everything that determines its weights (architecture, training
settings, seeds, the data hashes and normalisation, the device kind and, for a distilled
student, its teacher's weights hash). Each
model is a folder holding `record.json` and `weights.safetensors`, written into a temporary
folder and renamed into place, so an interrupted run never leaves a half-saved model. While a
group trains, its state is saved now and then under `.partial/`, so a rerun goes on from there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kdlab.io import atomic_write_json, stable_hash
from kdlab.training.checkpoint import saved_group

WEIGHTS = "weights.safetensors"
RECORD = "record.json"
PARTIAL = ".partial"  # groups being trained: their last saved state


def model_key(identity: dict) -> str:
    return stable_hash(identity)[:16]


@dataclass
class StoredModel:
    state: dict[str, torch.Tensor]
    record: dict


@dataclass
class TrainedModel:
    """A model as a run uses it: its weights (and, if kept, those of its best epoch), its
    record, and whether this run reused it from the store or trained it."""

    name: str
    arch: str
    sizes: tuple[int, ...]
    state: dict[str, torch.Tensor]
    record: dict
    reused: bool
    folder: Path
    best: dict[str, torch.Tensor] | None = None  # weights at the epoch of lowest validation loss


class ModelStore:
    def __init__(self, root: Path):
        self.root = root

    def folder(self, name: str, key: str) -> Path:
        slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
        return self.root / f"{slug}-{key}"

    def partial(self, keys: list[str]) -> Path:
        """Where the training state of the group of models `keys` is saved while it trains
        (hidden beside the finished models; removed once they are saved)."""
        return self.root / PARTIAL / f"{stable_hash(keys)[:16]}.safetensors"

    def prune_partials(self, idle_s: float = 3600.0) -> list[Path]:
        """Remove what under `.partial/` no run can use: the saves of groups whose every model
        is now stored (e.g. trained again in groups of another size), and, once nothing has
        written them for `idle_s`, unreadable saves and the temporary files of interrupted
        writes. Returns what was removed."""
        removed = []
        for path in sorted((self.root / PARTIAL).glob("*")):
            try:
                idle = time.time() - path.stat().st_mtime
            except OSError:
                continue
            group = saved_group(path) if path.suffix == ".safetensors" else None
            if group is not None:
                useless = all(any(self.root.glob(f"*-{key}/{RECORD}")) for key in group)
            else:
                useless = idle >= idle_s
            if useless and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def load(self, name: str, key: str) -> StoredModel | None:
        """The stored model, or None when absent or damaged (then it is trained again)."""
        folder = self.folder(name, key)
        try:
            record = json.loads((folder / RECORD).read_text())
            weights = (folder / WEIGHTS).read_bytes()
        except (OSError, ValueError):
            return None
        if hashlib.sha256(weights).hexdigest() != record.get("weights_sha256"):
            warnings.warn(f"{folder} is damaged (weights hash mismatch); training it again", stacklevel=2)
            return None
        return StoredModel(load_file(folder / WEIGHTS), record)

    def save(self, name: str, key: str, state: dict[str, torch.Tensor], record: dict) -> StoredModel:
        """Save the model; what was saved, its record with the weights' hash added."""
        final = self.folder(name, key)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{final.name}."))
        try:
            save_file({k: v.cpu().contiguous() for k, v in state.items()}, str(tmp / WEIGHTS))
            digest = hashlib.sha256((tmp / WEIGHTS).read_bytes()).hexdigest()
            record = {**record, "weights_sha256": digest}
            atomic_write_json(tmp / RECORD, record)
            if final.exists():
                shutil.rmtree(final)
            try:
                tmp.rename(final)
            except OSError:  # another process saved the same model (same key: same weights) first
                if not (final / RECORD).exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return StoredModel(state, record)
