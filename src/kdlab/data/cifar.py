"""The binary format of CIFAR-10 (`cifar-10-batches-bin/*.bin`), parsed whole into numpy.

Each batch file is a run of fixed-size records with nothing between them: one label byte, then
the image's bytes, channel-major (for CIFAR-10 1024 red, 1024 green, 1024 blue bytes, each plane
row-major). `batches.meta.txt` names the classes, one per line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdlab.errors import KdlabError


def parse_batch(
    data: bytes, records: int, image_bytes: int, num_classes: int, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """The images [records, image_bytes] and labels [records] (uint8) of one batch file, which
    must be exactly `records` records long and hold only labels below `num_classes`."""
    record = 1 + image_bytes
    if len(data) != records * record:
        raise KdlabError(
            f"{source} is truncated or padded: {len(data)} bytes, expected {records} records "
            f"of {record} bytes ({records * record} bytes)"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(records, record)
    labels = rows[:, 0]
    if records and int(labels.max()) >= num_classes:
        index = int(np.argmax(labels >= num_classes))
        raise KdlabError(
            f"{source} holds label {int(labels[index])} in record {index}, "
            f"beyond its {num_classes} classes (a corrupt file?)"
        )
    return rows[:, 1:], labels


def read_class_names(path: Path) -> tuple[str, ...]:
    """The class names in a `batches.meta.txt`: its non-blank lines, stripped."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise KdlabError(f"cannot read the class names in {path}: {e}") from e
    return tuple(line.strip() for line in text.splitlines() if line.strip())
