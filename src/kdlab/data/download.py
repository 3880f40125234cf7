"""Fetch missing data files with pooch: hash-checked, written atomically, mirrors tried in turn."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from kdlab.errors import KdlabError


def fetch(fname: str, known_hash: str, mirrors: tuple[str, ...], folder: Path, quiet: bool) -> Path:
    """Download `fname` into `folder` from the first mirror that serves it with the right hash.

    pooch downloads into a temporary file and renames it only after the hash matched, so a
    failed or interrupted download never leaves a half-written file behind.
    """
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    errors = []
    try:
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + fname
            try:
                path = pooch.retrieve(
                    url, known_hash=known_hash, fname=fname, path=folder, progressbar=not quiet
                )
                return Path(path)
            except Exception as e:  # network errors, HTTP errors and hash mismatches alike
                errors.append(f"{url}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    finally:
        logger.setLevel(level)
    raise KdlabError(f"could not download {fname} ({'; '.join(errors)})")


def extract_members(archive: Path, names: tuple[str, ...], optional: tuple[str, ...], folder: Path) -> None:
    """Copy the regular files of a tar archive whose base names are in `names` (all required) or
    `optional` into `folder`, flat, wherever they sit in the archive.

    Only those fixed base names are ever written, into `folder` itself, so no member can reach
    outside it (no `..`, absolute paths, links or device files); everything else is ignored.
    """
    wanted = set(names) | set(optional)
    found: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                base = PurePosixPath(member.name).name
                if base not in wanted or not member.isreg():
                    continue
                if base in found:
                    raise KdlabError(f"{archive.name} holds {base} twice ({found[base]}, {member.name})")
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has contents
                with source, open(folder / base, "xb") as target:
                    shutil.copyfileobj(source, target)
                found[base] = member.name
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise KdlabError(f"cannot extract {archive.name}: {e}") from e
    if missing := [name for name in names if name not in found]:
        raise KdlabError(f"{archive.name} lacks {', '.join(missing)}")


def _make_dirs(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    created = []
    for path in [*reversed(folder.parents), folder]:
        if not path.is_dir():
            path.mkdir(exist_ok=True)
            created.append(path)
    return created


def fetch_archive(
    fname: str,
    known_hash: str,
    mirrors: tuple[str, ...],
    target: Path,
    names: tuple[str, ...],
    optional: tuple[str, ...],
    quiet: bool,
    prepare: Callable[[Path], None],
) -> Path:
    """Download the archive `fname` (hash-checked), extract the members `names` (and `optional`
    ones if present) and make them the new folder `target`, all or nothing.

    The archive is downloaded and extracted into a temporary folder beside `target`;
    `prepare(folder)` then checks the extracted files (raising KdlabError if they are unusable)
    and may add files, and only then is the folder renamed to `target`. On any failure the
    temporary folder and any folder created on the way are removed, so nothing is left behind;
    the archive itself is never kept.
    """
    if target.exists():
        raise KdlabError(f"{target} exists but is incomplete: remove it to download it again")
    created = _make_dirs(target.parent)
    done = False
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            archive = fetch(fname, known_hash, mirrors, staging, quiet)
            folder = staging / target.name
            folder.mkdir()
            extract_members(archive, names, optional, folder)
            try:
                prepare(folder)
            except KdlabError as e:
                raise KdlabError(f"the downloaded {fname} holds unusable data: {e}") from e
            try:
                os.rename(folder, target)
            except OSError as e:
                raise KdlabError(f"cannot move the extracted files to {target}: {e.strerror}") from e
            done = True
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if not done:
            for path in reversed(created):
                with contextlib.suppress(OSError):  # something else was put there meanwhile
                    path.rmdir()
    return target
