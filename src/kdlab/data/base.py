"""What a data set is, as the built-in sets (`datasets`) and the user's own .npz files (`npz`)
both build it: its spec, its tensors, and the scaling every loader applies to its images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IDX = "idx"  # MNIST-style IDX files, gzipped or raw
CIFAR_BINARY = "cifar-binary"  # CIFAR-10's binary batch files
NPZ = "npz"  # the user's own data: one .npz file (see kdlab.data.npz)
FORMATS = (IDX, CIFAR_BINARY, NPZ)

SPLIT_FILES = {  # the IDX files, by role
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

CIFAR_FILES = {  # the CIFAR binary batch files, by split
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to find, verify and normalise one data set."""

    name: str
    folders: tuple[str, ...]  # folder names under a data root, first is the canonical one
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of pixels scaled to [0, 1] (a float means one channel)
    std: tuple[float, ...]
    raw_sha256: dict[str, str]  # hashes of the decompressed file bytes: the data's identity
    gz_md5: dict[str, str]  # hashes of the mirrors' .gz files (IDX), checked while downloading
    mirrors: tuple[str, ...]
    image_shape: tuple[int, int, int] = (1, 28, 28)  # channels, height, width
    format: str = IDX  # one of FORMATS
    extra_roots: tuple[Path, ...] = ()  # more data roots, searched after the cache
    archive: str = ""  # cifar-binary: the archive's file name on the mirrors
    archive_md5: str = ""  # cifar-binary: its md5, checked while downloading
    records_per_file: int = 10_000  # cifar-binary: images in every batch file

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, (int, float)):
                object.__setattr__(self, name, (float(value),))
        if self.format not in FORMATS:
            raise ValueError(f"{self.name}: unknown format {self.format!r}; known: {', '.join(FORMATS)}")
        if not len(self.mean) == len(self.std) == self.channels:
            raise ValueError(f"{self.name}: mean and std need one value per channel ({self.channels})")

    @property
    def channels(self) -> int:
        return self.image_shape[0]

    @property
    def split_files(self) -> dict[str, tuple[str, ...]]:
        """The data files of each split: for IDX the images then the labels file (stems, found
        as `<stem>.gz` or `<stem>`), for CIFAR binary the batch files."""
        if self.format == IDX:
            return {
                split: (SPLIT_FILES[f"{split}_images"], SPLIT_FILES[f"{split}_labels"])
                for split in ("train", "test")
            }
        return dict(CIFAR_FILES)

    @property
    def files(self) -> tuple[str, ...]:
        """All of the data set's data files."""
        return tuple(name for names in self.split_files.values() for name in names)


@dataclass
class Dataset:
    """A whole data set in memory: normalised float images [N, D] and int64 labels [N].

    The images are flattened channel-major, so `x.view(N, *image_shape)` gives them as images.
    """

    spec: DatasetSpec
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    hashes: dict[str, str]
    folder: Path
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width); the spec's if None

    def __post_init__(self) -> None:
        if self.image_shape is None:
            self.image_shape = self.spec.image_shape

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


def scaled(a: np.ndarray) -> torch.Tensor:
    """Channel-major images [N, ...] as float32 [N, D] in [0, 1]: uint8 divided by 255, float as
    given (already in [0, 1])."""
    x = torch.from_numpy(a.reshape(len(a), -1).astype(np.float32))
    return x.div_(255.0) if a.dtype == np.uint8 else x


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Scaled images [N, D] normalised in place per channel (channel-major: each channel's
    pixels are contiguous)."""
    channels = x.view(len(x), len(mean), -1)
    channels.sub_(torch.tensor(mean).view(-1, 1)).div_(torch.tensor(std).view(-1, 1))
    return x
