"""A training group's state saved while it trains, so that an interrupted run resumes from its
last save instead of from epoch 0, and ends with the very weights of an uninterrupted run.

The state is every tensor the loop carries from one epoch to the next (the weights, the
optimiser's moments and step counters, each model's generator) plus a few numbers (epoch, step,
the learning curves so far), in one safetensors file written atomically: no pickle, and a
kill mid-write leaves the previous save. A save is made at the end of an epoch, at most every
`every_s` seconds, so short models never pay for it. A file that is damaged, or of other
models, is ignored with a warning and the group trains from epoch 0.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from kdlab.io import atomic_write_bytes

FORMAT = 1
SAVE_EVERY_S = 60.0  # a 2.4 M-parameter teacher's state is ~30 MB: a save a minute costs < 1%


class Stateful(Protocol):
    """What else a group's training carries across epochs (e.g. each model's best weights)."""

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]: ...

    def restore_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None: ...


@dataclass
class Checkpoint:
    """Where one group's state goes: `path`, for the models `group` (their store keys, in
    order; a file of any other group is not used)."""

    path: Path
    group: list[str]
    every_s: float = SAVE_EVERY_S
    extra: Stateful | None = None
    resume: bool = True  # False: start from epoch 0 whatever was saved (and save as usual)
    resumed_epoch: int = 0  # the epoch training went on from (0: it began afresh)
    earlier_s: float = 0.0  # seconds spent on the group before the save it resumed from
    began: float = field(default_factory=time.monotonic)
    last_save: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return time.monotonic() - self.last_save >= self.every_s

    def elapsed_s(self) -> float:
        """Seconds spent on the group so far, over every run that trained it."""
        return self.earlier_s + time.monotonic() - self.began

    def resumed(self, meta: dict[str, Any]) -> None:
        """Training goes on from the save whose numbers are `meta`."""
        self.resumed_epoch = int(meta["epoch"])
        wall = meta.get("wall_s", 0.0)
        finite = isinstance(wall, int | float) and math.isfinite(wall) and wall >= 0
        self.earlier_s = float(wall) if finite else 0.0

    def save(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        if self.extra is not None:
            more, extra_meta = self.extra.checkpoint_state()
            tensors = {**tensors, **{f"extra.{k}": v for k, v in more.items()}}
            meta = {**meta, "extra": extra_meta}
        header = {"format": FORMAT, "group": self.group, "wall_s": self.elapsed_s(), **meta}
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        # safetensors has no checksum: the hash of the tensors' bytes goes into the header
        # (the bytes do not depend on the header, so a second serialisation carries it)
        digest = hashlib.sha256(_parts(save_tensors(tensors))[1]).hexdigest()
        blob = save_tensors(tensors, metadata={"kdlab": json.dumps({**header, "sha256": digest})})
        atomic_write_bytes(self.path, blob)
        self.last_save = time.monotonic()

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The saved tensors and numbers, or None when there is no usable save."""
        if not self.resume:
            return None
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            warnings.warn(f"{self.path}: cannot be read ({err}); training from epoch 0", stacklevel=2)
            return None
        try:
            header, body = _parts(blob)
            meta = json.loads(header["__metadata__"]["kdlab"])
            if not isinstance(meta, dict):
                raise ValueError("no kdlab header")
            if meta.get("sha256") != hashlib.sha256(body).hexdigest():
                raise ValueError("its tensors do not match their hash")
            tensors = load_tensors(blob)
        except Exception as err:  # any damage in a file this process did not just write
            warnings.warn(f"{self.path} is damaged ({err}); training from epoch 0", stacklevel=2)
            return None
        if meta.get("format") != FORMAT or meta.get("group") != self.group:
            warnings.warn(f"{self.path} is of other models; training from epoch 0", stacklevel=2)
            return None
        return tensors, meta

    def restore_extra(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Hand `extra` its part of a loaded save (it raises ValueError, changing nothing, if
        that part does not fit)."""
        if self.extra is not None:
            mine = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
            self.extra.restore_state(mine, meta.get("extra", {}))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def saved_group(path: Path) -> list[str] | None:
    """The store keys of the models whose state the save at `path` holds, read from its header
    (its tensors are not checked); None when it cannot be read as a save."""
    try:
        group = json.loads(_parts(path.read_bytes())[0]["__metadata__"]["kdlab"])["group"]
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    ok = isinstance(group, list) and all(isinstance(k, str) for k in group)
    return group if ok else None


def _parts(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """A safetensors file's header (8 bytes of length, then JSON) and the tensors' bytes after it."""
    (length,) = struct.unpack("<Q", blob[:8])
    if length > len(blob) - 8:
        raise ValueError("truncated header")
    return json.loads(blob[8 : 8 + length]), blob[8 + length :]


def matched(targets: list[torch.Tensor], saved: dict[str, torch.Tensor], prefix: str) -> list[torch.Tensor]:
    """The saved tensors `prefix`0, 1, ... that go into `targets`, in order; ValueError unless
    each matches its target in shape and dtype and none is missing or extra."""
    names = [f"{prefix}{i}" for i in range(len(targets))]
    found = sorted(k for k in saved if k.startswith(prefix) and k[len(prefix) :].isdigit())
    if sorted(names) != found:
        raise ValueError(f"{prefix}: {len(found)} tensors saved, {len(targets)} expected")
    for name, target in zip(names, targets):
        src = saved[name]
        if src.shape != target.shape or src.dtype != target.dtype:
            raise ValueError(f"{name}: {tuple(src.shape)} {src.dtype} saved, {tuple(target.shape)} expected")
    return [saved[name] for name in names]
