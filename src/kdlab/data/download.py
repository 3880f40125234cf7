"""Fetch missing data files with pooch: hash-checked, written atomically, mirrors tried in turn."""

from __future__ import annotations

import logging
from pathlib import Path

from kdlab import KdlabError


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
