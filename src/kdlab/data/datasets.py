"""Where data sets live, what their files must hash to, and how they become tensors."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from kdlab import KdlabError
from kdlab.data.download import fetch
from kdlab.data.idx import parse_idx, read_bytes

SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to find, verify and normalise one IDX data set."""

    name: str
    folders: tuple[str, ...]  # folder names under a data root, first is the canonical one
    classes: tuple[str, ...]
    mean: float
    std: float
    raw_sha256: dict[str, str]  # hashes of the decompressed IDX bytes: the data's identity
    gz_md5: dict[str, str]  # hashes of the mirrors' .gz files, checked while downloading
    mirrors: tuple[str, ...]


MNIST = DatasetSpec(
    name="mnist",
    folders=("mnist", "MNIST/raw"),
    classes=tuple(str(d) for d in range(10)),
    mean=0.1307,
    std=0.3081,
    raw_sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    gz_md5={
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
)

DATASETS: dict[str, DatasetSpec] = {MNIST.name: MNIST}


@dataclass
class Dataset:
    """A whole data set in memory: normalised float images [N, D] and int64 labels [N]."""

    spec: DatasetSpec
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    hashes: dict[str, str]
    folder: Path

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


def cache_dir() -> Path:
    """Per-user data cache (KDLAB_CACHE overrides it)."""
    if env := os.environ.get("KDLAB_CACHE"):
        return Path(env)
    import pooch

    return Path(pooch.os_cache("kdlab"))


def _file_in(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _complete_folder(root: Path, spec: DatasetSpec) -> Path | None:
    """The folder under `root` that holds all of the data set's files; an error if one holds
    only some of them and none holds all."""
    partial = None
    for sub in spec.folders:
        folder = root / sub
        if not folder.is_dir():
            continue
        missing = [stem for stem in SPLIT_FILES.values() if _file_in(folder, stem) is None]
        if not missing:
            return folder
        if len(missing) < len(SPLIT_FILES) and partial is None:
            partial = KdlabError(f"{folder} lacks {', '.join(missing)} (gzipped or raw IDX)")
    if partial is not None:
        raise partial
    return None


def locate(spec: DatasetSpec, data_dir: Path | None, download: bool, quiet: bool) -> Path:
    """Find the data in --data-dir, then $KDLAB_DATA, then the cache; download into the cache."""
    roots: list[Path] = []
    if data_dir is not None:
        if not data_dir.is_dir():
            raise KdlabError(f"data folder {data_dir} does not exist")
        roots.append(data_dir)
    if env := os.environ.get("KDLAB_DATA"):
        roots.append(Path(env))
    roots.append(cache_dir())
    for root in roots:
        if not root.is_dir():
            continue
        try:
            if (folder := _complete_folder(root, spec)) is not None:
                return folder
        except KdlabError:
            if not (download and root == cache_dir()):
                raise  # a partial cache is only completed below when downloading
    searched = ", ".join(str(r) for r in roots)
    if not download:
        raise KdlabError(f"{spec.name} not found under {searched} (downloads are off)")
    folder = cache_dir() / spec.folders[0]
    for stem in SPLIT_FILES.values():
        if _file_in(folder, stem) is None:
            fetch(f"{stem}.gz", f"md5:{spec.gz_md5[stem]}", spec.mirrors, folder, quiet)
    return folder


def _read_verified(folder: Path, stem: str, spec: DatasetSpec, dims: int) -> tuple:
    path = _file_in(folder, stem)
    assert path is not None
    data = read_bytes(path)
    array = parse_idx(data, dims, str(path))
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.raw_sha256[stem]:
        raise KdlabError(
            f"{path} fails its hash check: sha256 of the IDX bytes is {digest[:16]}…, "
            f"expected {spec.raw_sha256[stem][:16]}…"
        )
    return array, digest


def load_dataset(
    name: str = "mnist",
    data_dir: Path | None = None,
    download: bool = True,
    quiet: bool = False,
) -> Dataset:
    """Load a whole data set as normalised tensors, every file verified against its known hash."""
    if name not in DATASETS:
        raise KdlabError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    folder = locate(spec, data_dir, download, quiet)
    arrays, hashes = {}, {}
    for key, stem in SPLIT_FILES.items():
        arrays[key], hashes[stem] = _read_verified(folder, stem, spec, 3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img == 0:
            raise KdlabError(f"{split} split of {name} is empty")
        if n_img != n_lab:
            raise KdlabError(f"{split} split has {n_img} images but {n_lab} labels")

    def images(a):
        x = torch.from_numpy(a.reshape(len(a), -1).astype("float32")) / 255.0
        return (x - spec.mean) / spec.std

    def labels(a):
        y = torch.from_numpy(a.astype("int64"))
        if int(y.max()) >= len(spec.classes):
            raise KdlabError(
                f"{name} labels hold class {int(y.max())}, beyond its {len(spec.classes)} classes"
            )
        return y

    return Dataset(
        spec=spec,
        x_train=images(arrays["train_images"]),
        y_train=labels(arrays["train_labels"]),
        x_test=images(arrays["test_images"]),
        y_test=labels(arrays["test_labels"]),
        hashes=hashes,
        folder=folder,
    )
