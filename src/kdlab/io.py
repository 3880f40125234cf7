"""Atomic file writes, output folders claimed for one experiment and held by one run at a time,
and provenance: a crash never leaves a half-written result, two runs never write one folder
side by side, and results are never replaced by those of other settings."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kdlab.errors import KdlabError
from kdlab.version import __version__

LOCK = ".kdlab-run.lock"  # in an output folder while a run holds it; it holds the run's pid
MARKER = "kdlab-run.json"  # in an output folder: the experiment and settings its results are of
_HELD: dict[Path, int] = {}  # the output folders this process holds -> their lock file's descriptor


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def hold_folder(out: Path) -> bool:
    """Hold `out` (created if missing) for this process with an exclusive OS lock, until
    `holding_claims` gives it back or the process ends (the OS drops it with a crashed one);
    whether it was taken now. A folder another process holds is refused at once."""
    out.mkdir(parents=True, exist_ok=True)
    key = out.resolve()
    if key in _HELD:
        return False
    path = out / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise KdlabError(
                f"{out} is in use by another kdlab run{f' (pid {pid})' if pid else ''}"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:  # not a file its last holder removed
                break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = fd
    return True


def release_folder(out: Path) -> None:
    """Give back `out` if this process holds it; its lock file goes (while still locked)."""
    fd = _HELD.pop(out.resolve(), None)
    if fd is not None:
        with contextlib.suppress(FileNotFoundError):
            (out / LOCK).unlink()
        os.close(fd)


@contextlib.contextmanager
def holding_claims() -> Iterator[None]:
    """Every output folder claimed within the block stays held until it ends, however it ends,
    and is given back then; folders held before it stay held (a re-entrant run's)."""
    before = set(_HELD)
    try:
        yield
    finally:
        for folder in [f for f in _HELD if f not in before]:
            release_folder(folder)


def prepare_out(out: Path, protocol: str, settings: dict) -> None:
    """Claim `out` for this experiment and these settings (the experiment's config and the
    device kind: what its results depend on). A folder holding another experiment's, or other
    settings', results is refused before anything is written: results are never replaced by
    those of another configuration. The same settings may rerun into it (a resume). The check
    and the claim hold the folder's lock, and the claim keeps it (see `hold_folder`): a run
    into a folder another run holds is refused at once."""
    if out.exists() and not out.is_dir():
        raise KdlabError(f"output path {out} is a file, not a folder")
    taken = hold_folder(out)
    try:
        _claim(out, protocol, settings)
    except BaseException:
        if taken:
            release_folder(out)
        raise


def _claim(out: Path, protocol: str, settings: dict) -> None:
    """The check of a held folder's marker, then the marker written (see `prepare_out`)."""
    marker = out / MARKER
    if any(p.name != LOCK for p in out.iterdir()):
        try:
            owner = json.loads(marker.read_text())
        except (OSError, ValueError):
            raise KdlabError(
                f"output folder {out} holds files that are not a kdlab run; choose another --out"
            ) from None
        old = owner.get("settings")
        dataset = (old or owner).get("dataset")
        if owner.get("protocol") != protocol or dataset != settings.get("dataset"):
            raise KdlabError(
                f"output folder {out} holds results of another experiment "
                f"({owner.get('protocol')} on {dataset}); choose another --out"
            )
        if not isinstance(old, dict):
            raise KdlabError(
                f"output folder {out} holds a run whose settings were not recorded; choose another --out"
            )
        changed = [
            f"{name.replace('_', '-')} {_text(old.get(name))} → {_text(settings.get(name))}"
            for name in sorted(set(old) | set(settings))
            if old.get(name) != settings.get(name)
        ]
        if changed:
            raise KdlabError(
                f"output folder {out} holds the results of other settings ({'; '.join(changed)}); "
                "choose another --out (and --models-dir to share the trained models)"
            )
    atomic_write_json(marker, {"protocol": protocol, "settings": settings})


def claimed_settings(provenance: dict) -> dict:
    """What an output folder's results depend on: the experiment's config and the device kind."""
    return {**provenance["config"], "device": provenance["device"]}


def _text(value: object) -> str:
    if value is None:
        return "unset"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


@atexit.register
def _release_all() -> None:
    for folder in list(_HELD):
        release_folder(folder)


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of `obj`: the content address of a config."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    import matplotlib
    import numpy
    import torch

    return {
        "kdlab": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "threads": str(torch.get_num_threads()),
    }
