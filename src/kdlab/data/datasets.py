"""Where data sets live, what their files must hash to, and how they become tensors.

Every file is verified before use, and the sha256 of its decompressed bytes is recorded in
`Dataset.hashes` whatever it was verified by:

* IDX files (mnist, fashion-mnist, kmnist) by the sha256 of their decompressed bytes where the
  spec knows it (`raw_sha256`); otherwise a gzipped file by the md5 of the .gz file as the
  mirrors serve it (`gz_md5`), so re-compressed files fail. An uncompressed file whose raw hash
  is not known cannot be verified and is refused.
* CIFAR-10 binary batches (cifar10): the raw sha256 of the batch files is not known here. When
  kdlab downloads them, the archive is checked against its md5, every batch file is checked for
  its exact size and labels, and their sha256 are written to `SHA256SUMS` next to them; later
  loads check the files against `SHA256SUMS` (and against `raw_sha256` where the spec knows a
  hash). Batch files put in place by the user without a `SHA256SUMS` are accepted when their
  size (exactly `records_per_file` records) and labels check out; their sha256 in
  `Dataset.hashes` then identifies the data in every result.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from kdlab.data.base import CIFAR_BINARY, IDX, Dataset, DatasetSpec, normalise, scaled
from kdlab.data.cifar import parse_batch, read_class_names
from kdlab.data.download import fetch, fetch_archive
from kdlab.data.idx import parse_idx, read_file
from kdlab.data.npz import load_npz
from kdlab.errors import KdlabError

CIFAR_META = "batches.meta.txt"  # the class names, one per line (optional)
MANIFEST = "SHA256SUMS"  # sha256 of the batch files, written when kdlab downloads them

MNIST = DatasetSpec(
    name="mnist",
    folders=("mnist", "MNIST/raw"),
    classes=tuple(str(d) for d in range(10)),
    mean=(0.1307,),
    std=(0.3081,),
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

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    folders=("fashion-mnist", "FashionMNIST/raw"),
    classes=(
        "t-shirt",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle-boot",
    ),
    mean=(0.2860,),
    std=(0.3530,),
    raw_sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    gz_md5={
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    # Debian's package dataset-fashion-mnist installs the files in /usr/share/datasets/fashion-mnist.
    extra_roots=(Path("/usr/share/datasets"),),
)

KMNIST = DatasetSpec(
    name="kmnist",
    folders=("kmnist", "KMNIST/raw"),
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    mean=(0.1918,),
    std=(0.3483,),
    raw_sha256={},  # not known: the files are verified by the md5 of the original .gz files
    gz_md5={
        "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
    },
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
)

CIFAR10 = DatasetSpec(
    name="cifar10",
    folders=("cifar10/cifar-10-batches-bin", "cifar10", "cifar-10-batches-bin"),
    classes=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    raw_sha256={},  # not known: see the module's docstring for how the batch files are verified
    gz_md5={},
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    image_shape=(3, 32, 32),
    format=CIFAR_BINARY,
    archive="cifar-10-binary.tar.gz",
    archive_md5="c32a1d4ab5d03f1284b67883e8d87530",
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST, KMNIST, CIFAR10)}


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


def _find(spec: DatasetSpec, folder: Path, name: str) -> Path | None:
    """The path of one of the data set's files in `folder`, None if it is not there."""
    if spec.format == IDX:
        return _file_in(folder, name)
    path = folder / name
    return path if path.is_file() else None


def _complete_folder(root: Path, spec: DatasetSpec) -> Path | None:
    """The folder under `root` that holds all of the data set's files; an error if one holds
    only some of them and none holds all."""
    partial = None
    for sub in spec.folders:
        folder = root / sub
        if not folder.is_dir():
            continue
        missing = [name for name in spec.files if _find(spec, folder, name) is None]
        if not missing:
            return folder
        if len(missing) < len(spec.files) and partial is None:
            kind = " (gzipped or raw IDX)" if spec.format == IDX else ""
            partial = KdlabError(f"{folder} lacks {', '.join(missing)}{kind}")
    if partial is not None:
        raise partial
    return None


def locate(spec: DatasetSpec, data_dir: Path | None, download: bool, quiet: bool) -> Path:
    """Find the data in --data-dir, then $KDLAB_DATA, then the cache, then the spec's extra roots;
    download into the cache."""
    roots: list[Path] = []
    if data_dir is not None:
        if not data_dir.is_dir():
            raise KdlabError(f"data folder {data_dir} does not exist")
        roots.append(data_dir)
    if env := os.environ.get("KDLAB_DATA"):
        roots.append(Path(env))
    roots.append(cache_dir())
    roots.extend(spec.extra_roots)
    for root in roots:
        if not root.is_dir():
            continue
        try:
            if (folder := _complete_folder(root, spec)) is not None:
                return folder
        except KdlabError:
            if not (download and (root == cache_dir() or root in spec.extra_roots)):
                raise  # a partial cache is only completed below when downloading
    searched = ", ".join(str(r) for r in roots)
    if not download:
        raise KdlabError(f"{spec.name} not found under {searched} (downloads are off)")
    if spec.format == CIFAR_BINARY:
        return _download_cifar(spec, quiet)
    folder = cache_dir() / spec.folders[0]
    for stem in spec.files:
        if _file_in(folder, stem) is None:
            fetch(f"{stem}.gz", f"md5:{spec.gz_md5[stem]}", spec.mirrors, folder, quiet)
    return folder


# ---------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------


def _read_verified(folder: Path, stem: str, spec: DatasetSpec, dims: int) -> tuple:
    """One IDX file parsed and verified: by its raw sha256 where known, else by the md5 of the
    .gz file it was read from; an uncompressed file with no known hash is refused."""
    path = _file_in(folder, stem)
    assert path is not None
    data, gz_md5 = read_file(path)
    array = parse_idx(data, dims, str(path))
    digest = hashlib.sha256(data).hexdigest()
    if (expected := spec.raw_sha256.get(stem)) is not None:
        if digest != expected:
            raise KdlabError(
                f"{path} fails its hash check: sha256 of the IDX bytes is {digest[:16]}…, "
                f"expected {expected[:16]}…"
            )
    elif gz_md5 is None:
        raise KdlabError(
            f"{path} is uncompressed and the hash of {spec.name}'s uncompressed {stem} is not known, "
            f"so it cannot be verified: keep the original {stem}.gz file (verified by its md5) instead"
        )
    elif (expected := spec.gz_md5.get(stem)) is None:
        raise KdlabError(f"{path} cannot be verified: no hash of {stem} is known for {spec.name}")
    elif gz_md5 != expected:
        raise KdlabError(
            f"{path} fails its hash check: md5 of the .gz file is {gz_md5[:16]}…, expected "
            f"{expected[:16]}… ({spec.name} is verified by the original .gz files; "
            "re-compressed ones fail too)"
        )
    return array, digest


def _load_idx(spec: DatasetSpec, folder: Path) -> tuple[dict, dict[str, str], tuple[int, int, int]]:
    arrays, hashes = {}, {}
    for split, (images, labels) in spec.split_files.items():
        x, hashes[images] = _read_verified(folder, images, spec, 3)
        y, hashes[labels] = _read_verified(folder, labels, spec, 1)
        arrays[split] = (x, y)
    shape = (1, *arrays["train"][0].shape[1:])
    if arrays["test"][0].shape[1:] != shape[1:]:
        raise KdlabError(
            f"{spec.name} train images are {shape[1]}x{shape[2]} but test images "
            f"{'x'.join(map(str, arrays['test'][0].shape[1:]))}"
        )
    return arrays, hashes, shape


# ---------------------------------------------------------------------------------------------
# CIFAR binary
# ---------------------------------------------------------------------------------------------


def _read_manifest(path: Path) -> dict[str, str]:
    """File name -> sha256 from a `sha256sum`-style file."""
    sums = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise KdlabError(f"cannot read {path}: {e}") from e
    for line in lines:
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        if len(digest) != 64 or not name.strip():
            raise KdlabError(f"{path} is malformed: {line!r} is not '<sha256>  <file name>'")
        sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def _check_class_names(spec: DatasetSpec, folder: Path) -> None:
    path = folder / CIFAR_META
    if path.is_file() and (names := read_class_names(path)) != spec.classes:
        raise KdlabError(f"{path} names the classes {', '.join(names)}; expected {', '.join(spec.classes)}")


def _read_batch(spec: DatasetSpec, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """One batch file's images, labels and sha256, checked for size and labels."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KdlabError(f"cannot read {path}: {e.strerror}") from e
    image_bytes = int(np.prod(spec.image_shape))
    x, y = parse_batch(data, spec.records_per_file, image_bytes, len(spec.classes), str(path))
    return x, y, hashlib.sha256(data).hexdigest()


def _load_cifar(spec: DatasetSpec, folder: Path) -> tuple[dict, dict[str, str], tuple[int, int, int]]:
    manifest = _read_manifest(folder / MANIFEST) if (folder / MANIFEST).is_file() else {}
    _check_class_names(spec, folder)
    arrays, hashes = {}, {}
    for split, names in spec.split_files.items():
        images, labels = [], []
        for name in names:
            path = folder / name
            x, y, digest = _read_batch(spec, path)
            for expected, source in (
                (spec.raw_sha256.get(name), f"known for {spec.name}"),
                (manifest.get(name), f"recorded in {folder / MANIFEST}"),
            ):
                if expected is not None and digest != expected:
                    raise KdlabError(
                        f"{path} fails its hash check: sha256 is {digest[:16]}…, "
                        f"expected {expected[:16]}… ({source})"
                    )
            hashes[name] = digest
            images.append(x)
            labels.append(y)
        arrays[split] = (np.concatenate(images), np.concatenate(labels))
    return arrays, hashes, spec.image_shape


def _download_cifar(spec: DatasetSpec, quiet: bool) -> Path:
    """Download and extract the archive into the cache, checking every batch file and writing
    their sha256 to SHA256SUMS before the folder appears under its name."""

    def prepare(folder: Path) -> None:
        _check_class_names(spec, folder)
        lines = []
        for name in spec.files:
            *_, digest = _read_batch(spec, folder / name)
            if (expected := spec.raw_sha256.get(name)) is not None and digest != expected:
                raise KdlabError(f"{name} fails its hash check: sha256 is {digest[:16]}…")
            lines.append(f"{digest}  {name}\n")
        (folder / MANIFEST).write_text("".join(lines), encoding="utf-8")

    return fetch_archive(
        spec.archive,
        f"md5:{spec.archive_md5}",
        spec.mirrors,
        cache_dir() / spec.folders[0],
        spec.files,
        (CIFAR_META,),
        quiet,
        prepare,
    )


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _images(a: np.ndarray, spec: DatasetSpec) -> torch.Tensor:
    """uint8 images [N, ...] as float32 [N, D] scaled to [0, 1] and normalised per channel."""
    return normalise(scaled(a), spec.mean, spec.std)


def load_dataset(
    name: str = "mnist",
    data_dir: Path | None = None,
    download: bool = True,
    quiet: bool = False,
) -> Dataset:
    """Load a whole data set as normalised tensors, every file verified (see the module's
    docstring for how each format is). A name ending in `.npz` is a file of the user's own
    data (see `kdlab.data.npz`), found by its path rather than under a data root."""
    if name.endswith(".npz"):
        return load_npz(Path(name))
    if name not in DATASETS:
        raise KdlabError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)}, or the path of an .npz file"
        )
    spec = DATASETS[name]
    folder = locate(spec, data_dir, download, quiet)
    load = _load_idx if spec.format == IDX else _load_cifar
    arrays, hashes, image_shape = load(spec, folder)
    for split, (images, labels) in arrays.items():
        if len(images) == 0:
            raise KdlabError(f"{split} split of {name} is empty")
        if len(images) != len(labels):
            raise KdlabError(f"{split} split has {len(images)} images but {len(labels)} labels")

    def labels(a: np.ndarray) -> torch.Tensor:
        y = torch.from_numpy(a.astype("int64"))
        if int(y.max()) >= len(spec.classes):
            raise KdlabError(
                f"{name} labels hold class {int(y.max())}, beyond its {len(spec.classes)} classes"
            )
        return y

    return Dataset(
        spec=spec,
        x_train=_images(arrays["train"][0], spec),
        y_train=labels(arrays["train"][1]),
        x_test=_images(arrays["test"][0], spec),
        y_test=labels(arrays["test"][1]),
        hashes=hashes,
        folder=folder,
        image_shape=image_shape,
    )
