"""The IDX format of MNIST-style files: parsed whole into numpy, with every check a corrupt file fails."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from kdlab.errors import KdlabError

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_file(path: Path) -> tuple[bytes, str | None]:
    """The decompressed bytes of a file, gzipped or raw (told apart by the gzip magic), and the
    md5 of the gzip file as stored (None for a raw file)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KdlabError(f"cannot read {path}: {e.strerror}") from e
    if data[:2] != _GZIP_MAGIC:
        return data, None
    gz_md5 = hashlib.md5(data).hexdigest()
    try:
        return gzip.decompress(data), gz_md5
    except (EOFError, OSError, zlib.error) as e:
        raise KdlabError(f"{path} is a corrupt or truncated gzip file ({e})") from e


def read_bytes(path: Path) -> bytes:
    """The decompressed bytes of an IDX file, gzipped or raw (told apart by the gzip magic)."""
    return read_file(path)[0]


def parse_idx(data: bytes, expected_dims: int, source: str) -> np.ndarray:
    """Parse IDX bytes of unsigned bytes with `expected_dims` dimensions (1: labels, 3: images)."""
    if len(data) < 4:
        raise KdlabError(f"{source} is too short to be an IDX file ({len(data)} bytes)")
    zero0, zero1, dtype, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or dtype != _UBYTE or ndim != expected_dims:
        raise KdlabError(
            f"{source} has a wrong IDX magic number 0x{data[:4].hex()} (expected 0x000008{expected_dims:02x})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise KdlabError(f"{source} is truncated inside its IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise KdlabError(
            f"{source} is truncated or padded: {len(data) - header} data bytes for shape {shape}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
