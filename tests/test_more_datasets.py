"""Tests of the data sets beyond MNIST: Fashion-MNIST, Kuzushiji-MNIST and CIFAR-10.

Fashion-MNIST is loaded for real from ../shared/data; everything else runs on small files the
tests write in the real formats (IDX, CIFAR's binary batches, the CIFAR tar.gz archive), with
the registered specs patched to their hashes and sizes. Downloads come from an HTTP server on
127.0.0.1 that the tests start themselves.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    STEMS,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    assert_mnist_layout,
    files_under,
    gz,
    idx_arrays,
    idx_bytes,
)
from helpers import write_idx as write_files

from kdlab import KdlabError
from kdlab.cli import main
from kdlab.data.base import Dataset, DatasetSpec
from kdlab.data.datasets import CIFAR10, DATASETS, FASHION_MNIST, KMNIST, MNIST, load_dataset

pytestmark = pytest.mark.usefixtures("cache")


def nothing_under(folder: Path) -> bool:
    """True if `folder` does not exist or holds neither files nor folders."""
    return not folder.exists() or not any(folder.iterdir())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------


def test_registry_holds_the_four_data_sets():
    """The four data sets are registered under their command-line names."""
    assert set(DATASETS) == {"mnist", "fashion-mnist", "kmnist", "cifar10"}
    assert DATASETS["fashion-mnist"] is FASHION_MNIST
    assert DATASETS["kmnist"] is KMNIST
    assert DATASETS["cifar10"] is CIFAR10


def test_unknown_name_lists_every_data_set():
    with pytest.raises(KdlabError, match=r"unknown data set 'svhn'.*mnist.*fashion-mnist.*kmnist.*cifar10"):
        load_dataset("svhn", download=False, quiet=True)


def test_mnist_spec_is_unchanged_in_substance():
    """MNIST keeps its constants, now as one-channel tuples, and its 1x28x28 shape."""
    assert MNIST.mean == (0.1307,) and MNIST.std == (0.3081,)
    assert MNIST.image_shape == (1, 28, 28) and MNIST.format == "idx"
    assert MNIST.files == STEMS


def test_spec_checks_its_channels():
    """A float mean/std means one channel; one value per channel is required."""
    assert replace(MNIST, mean=0.5, std=0.25).mean == (0.5,)
    with pytest.raises(ValueError, match="one value per channel"):
        replace(CIFAR10, mean=(0.5,), std=(0.25,))
    with pytest.raises(ValueError, match="unknown format"):
        replace(MNIST, format="pickle")


def test_dataset_image_shape_defaults_to_the_spec():
    x = torch.zeros(2, 3072)
    ds = Dataset(CIFAR10, x, torch.zeros(2), x, torch.zeros(2), {}, Path("."))
    assert ds.image_shape == (3, 32, 32)


# ---------------------------------------------------------------------------------------------
# IDX helpers
# ---------------------------------------------------------------------------------------------


ARRAYS = idx_arrays(20, 10, (28, 28), seed=1)
IDX_FILES = {stem: idx_bytes(a) for stem, a in ARRAYS.items()}  # raw IDX bytes by stem


def write_idx(folder: Path, files: dict[str, bytes] = IDX_FILES, gzipped: bool = True) -> Path:
    return write_files(folder, files, gzipped)


def register_idx(
    monkeypatch: pytest.MonkeyPatch, base: DatasetSpec, raw: bool, md5s: bool = True, **changes
) -> DatasetSpec:
    """Register under `base.name` a copy of `base` whose hashes are those of IDX_FILES: raw
    sha256 if `raw` (else none known), md5 of their deterministic gzip if `md5s`."""
    spec = replace(
        base,
        raw_sha256={s: sha256(b) for s, b in IDX_FILES.items()} if raw else {},
        gz_md5={s: md5(gz(b)) for s, b in IDX_FILES.items()} if md5s else {},
        **changes,
    )
    monkeypatch.setitem(DATASETS, base.name, spec)
    return spec


def expected_images(a: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return torch.from_numpy((a.reshape(len(a), -1) / 255.0 - mean) / std).float()


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST: the real one from ../shared/data
# ---------------------------------------------------------------------------------------------


def read_sums(path: Path) -> dict[str, str]:
    return {name: digest for digest, name in (line.split() for line in path.read_text().splitlines())}


@pytest.fixture(scope="module")
def fashion(shared_data: Path):
    """The real Fashion-MNIST, loaded once for this module (about 2 s)."""
    return load_dataset("fashion-mnist", data_dir=shared_data, download=False, quiet=True)


def test_real_fashion_mnist_shapes_and_classes(fashion, shared_data):
    assert_mnist_layout(fashion, shared_data / "fashion-mnist")
    assert fashion.image_shape == (1, 28, 28)
    assert fashion.classes == (
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
    )
    assert all(name == name.lower() and " " not in name and "/" not in name for name in fashion.classes)


def test_real_fashion_mnist_label_counts(fashion):
    """6000 images of every class in train, 1000 in test."""
    assert torch.bincount(fashion.y_train, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(fashion.y_test, minlength=10).tolist() == [1000] * 10


def test_real_fashion_mnist_is_normalised(fashion):
    """With Fashion-MNIST's own constants the train pixels have mean ~0 and std ~1."""
    x = fashion.x_train.double()
    assert abs(x.mean().item()) < 1e-3
    assert abs(x.std().item() - 1.0) < 1e-3
    assert x.min().item() == pytest.approx(-0.2860 / 0.3530, abs=1e-5)


def test_real_fashion_mnist_hashes(fashion, shared_data):
    """The recorded hashes are the sha256 of the decompressed files, as in SHA256SUMS.raw."""
    known = read_sums(shared_data / "fashion-mnist" / "SHA256SUMS.raw")
    assert fashion.hashes == known
    assert FASHION_MNIST.raw_sha256 == known


def test_fashion_mnist_debian_location_is_an_extra_root():
    """The spec searches where Debian's dataset-fashion-mnist installs the files."""
    assert Path("/usr/share/datasets") in FASHION_MNIST.extra_roots
    assert Path("/usr/share/datasets") / FASHION_MNIST.folders[0] == Path("/usr/share/datasets/fashion-mnist")


def test_extra_root_is_searched_after_the_cache(tmp_path, monkeypatch, cache):
    """Data in an extra root is found with nothing elsewhere; a copy in the cache or in
    --data-dir comes first."""
    debian = tmp_path / "usr-share-datasets"
    register_idx(monkeypatch, FASHION_MNIST, raw=True, extra_roots=(debian,))
    in_debian = write_idx(debian / "fashion-mnist", gzipped=False)
    ds = load_dataset("fashion-mnist", download=False, quiet=True)
    assert ds.folder == in_debian
    assert ds.hashes == DATASETS["fashion-mnist"].raw_sha256
    assert torch.allclose(ds.x_test, expected_images(ARRAYS[TEST_IMAGES], 0.2860, 0.3530), atol=1e-6)
    in_cache = write_idx(cache / "fashion-mnist")
    assert load_dataset("fashion-mnist", download=False, quiet=True).folder == in_cache
    in_arg = write_idx(tmp_path / "arg" / "fashion-mnist")
    assert load_dataset("fashion-mnist", tmp_path / "arg", download=False, quiet=True).folder == in_arg


def test_extra_root_is_named_when_nothing_is_found(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets"
    debian.mkdir()
    register_idx(monkeypatch, FASHION_MNIST, raw=True, extra_roots=(debian,))
    with pytest.raises(KdlabError, match="downloads are off") as info:
        load_dataset("fashion-mnist", download=False, quiet=True)
    assert str(debian) in str(info.value)


def test_partial_extra_root_is_an_error_without_downloads(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets"
    register_idx(monkeypatch, FASHION_MNIST, raw=True, extra_roots=(debian,))
    write_idx(debian / "fashion-mnist", {TRAIN_IMAGES: IDX_FILES[TRAIN_IMAGES]})
    with pytest.raises(KdlabError, match=f"lacks {TRAIN_LABELS}"):
        load_dataset("fashion-mnist", download=False, quiet=True)


def test_fashion_mnist_hash_mismatch(tmp_path, monkeypatch):
    """A Fashion-MNIST file whose decompressed bytes differ fails its raw sha256 check even
    when it is a valid gzip file."""
    register_idx(monkeypatch, FASHION_MNIST, raw=True, md5s=False)
    changed = bytearray(IDX_FILES[TEST_IMAGES])
    changed[-1] ^= 0xFF
    write_idx(tmp_path / "fashion-mnist", {**IDX_FILES, TEST_IMAGES: bytes(changed)})
    with pytest.raises(KdlabError, match="fails its hash check: sha256") as info:
        load_dataset("fashion-mnist", tmp_path, download=False, quiet=True)
    assert TEST_IMAGES in str(info.value)


# ---------------------------------------------------------------------------------------------
# Kuzushiji-MNIST: verified by the md5 of the original .gz files
# ---------------------------------------------------------------------------------------------


def test_kmnist_spec():
    """KMNIST's .gz md5 are torchvision's; no raw hash is known; its own constants and classes."""
    assert KMNIST.gz_md5 == {
        TRAIN_IMAGES: "bdb82020997e1d708af4cf47b453dcf7",
        TRAIN_LABELS: "e144d726b3acfaa3e44228e80efcd344",
        TEST_IMAGES: "5c965bf0a639b31b8f53240b1b52f4d7",
        TEST_LABELS: "7320c461ea6c1c855c0b718fb2a4b134",
    }
    assert KMNIST.raw_sha256 == {}
    assert KMNIST.classes == ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    assert (KMNIST.mean, KMNIST.std) == ((0.1918,), (0.3483,))
    assert KMNIST.folders[0] == "kmnist"
    assert KMNIST.mirrors == ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",)


@pytest.mark.parametrize("layout", ["kmnist", "KMNIST/raw"])
def test_kmnist_gz_files_load(tmp_path, monkeypatch, layout):
    """The original .gz files load, verified by their md5; the recorded hashes are still the
    sha256 of the decompressed bytes."""
    register_idx(monkeypatch, KMNIST, raw=False)
    folder = write_idx(tmp_path / layout)
    ds = load_dataset("kmnist", tmp_path, download=False, quiet=True)
    assert ds.folder == folder
    assert ds.x_train.shape == (20, 784) and ds.image_shape == (1, 28, 28)
    assert torch.allclose(ds.x_train, expected_images(ARRAYS[TRAIN_IMAGES], 0.1918, 0.3483), atol=1e-6)
    assert ds.y_test.tolist() == ARRAYS[TEST_LABELS].tolist()
    assert ds.hashes == {stem: sha256(data) for stem, data in IDX_FILES.items()}


def test_kmnist_raw_files_are_refused(tmp_path, monkeypatch):
    """Uncompressed files cannot be verified without a known raw hash: the error says to keep
    the original .gz files."""
    register_idx(monkeypatch, KMNIST, raw=False)
    write_idx(tmp_path / "kmnist", gzipped=False)
    with pytest.raises(KdlabError, match=r"cannot be verified: keep the original .*\.gz") as info:
        load_dataset("kmnist", tmp_path, download=False, quiet=True)
    assert TRAIN_IMAGES in str(info.value)


def test_kmnist_raw_files_load_once_their_raw_hash_is_known(tmp_path, monkeypatch):
    register_idx(monkeypatch, KMNIST, raw=True)
    write_idx(tmp_path / "kmnist", gzipped=False)
    ds = load_dataset("kmnist", tmp_path, download=False, quiet=True)
    assert ds.hashes == DATASETS["kmnist"].raw_sha256


@pytest.mark.parametrize("how", ["changed", "recompressed"])
def test_kmnist_md5_mismatch(tmp_path, monkeypatch, how):
    """A .gz file that differs from the original fails its md5 check: whether its contents
    changed or the same contents were compressed again."""
    register_idx(monkeypatch, KMNIST, raw=False)
    folder = write_idx(tmp_path / "kmnist")
    if how == "changed":
        changed = bytearray(IDX_FILES[TRAIN_LABELS])
        changed[-1] = (changed[-1] + 1) % 10
        (folder / f"{TRAIN_LABELS}.gz").write_bytes(gz(bytes(changed)))
    else:
        (folder / f"{TRAIN_LABELS}.gz").write_bytes(gz(IDX_FILES[TRAIN_LABELS], mtime=1))
    with pytest.raises(KdlabError, match=r"fails its hash check: md5 of the \.gz file") as info:
        load_dataset("kmnist", tmp_path, download=False, quiet=True)
    assert TRAIN_LABELS in str(info.value)


def test_kmnist_truncated_gzip(tmp_path, monkeypatch):
    register_idx(monkeypatch, KMNIST, raw=False)
    folder = write_idx(tmp_path / "kmnist")
    path = folder / f"{TEST_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(KdlabError, match="truncated gzip") as info:
        load_dataset("kmnist", tmp_path, download=False, quiet=True)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# A file server on 127.0.0.1
# ---------------------------------------------------------------------------------------------


def test_kmnist_download(server, monkeypatch, cache):
    """Missing KMNIST files are downloaded as .gz (md5-checked) into the cache and load."""
    server.files.update({f"{stem}.gz": gz(data) for stem, data in IDX_FILES.items()})
    register_idx(monkeypatch, KMNIST, raw=False, mirrors=(server.url,))
    ds = load_dataset("kmnist", download=True, quiet=True)
    assert ds.folder == cache / "kmnist"
    assert files_under(cache) == sorted(f"kmnist/{stem}.gz" for stem in STEMS)
    assert ds.hashes == {stem: sha256(data) for stem, data in IDX_FILES.items()}


# ---------------------------------------------------------------------------------------------
# CIFAR-10: binary batches
# ---------------------------------------------------------------------------------------------

RECORDS = 4  # images per batch file in the tests (10000 in the real ones)
BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
CIFAR_NAMES = (*BATCHES, TEST_BATCH)
META = "".join(f"{name}\n" for name in CIFAR10.classes) + "\n"  # the real file ends in a blank line


def cifar_batch(seed: int, records: int = RECORDS) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Random images [records, 3, 32, 32], labels (every class when records >= 10), and the
    batch file's bytes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (records, 3, 32, 32), dtype=np.uint8)
    labels = (np.arange(records) % 10 if records >= 10 else rng.integers(0, 10, records)).astype(np.uint8)
    data = b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, images))
    return images, labels, data


CIFAR = {name: cifar_batch(i) for i, name in enumerate(CIFAR_NAMES)}
CIFAR_BYTES = {name: batch[2] for name, batch in CIFAR.items()}


def write_cifar(folder: Path, files: dict[str, bytes] = CIFAR_BYTES, meta: str | None = META) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if meta is not None:
        (folder / "batches.meta.txt").write_text(meta)
    return folder


def register_cifar(monkeypatch: pytest.MonkeyPatch, **changes) -> DatasetSpec:
    """Register under cifar10 a copy of its spec with RECORDS images per batch file."""
    spec = replace(CIFAR10, **{"records_per_file": RECORDS, **changes})
    monkeypatch.setitem(DATASETS, "cifar10", spec)
    return spec


def load_cifar(data_dir: Path | None = None, download: bool = False):
    return load_dataset("cifar10", data_dir, download=download, quiet=True)


def expected_cifar(names: tuple[str, ...]) -> torch.Tensor:
    """The normalised images of the batch files `names`, [N, 3, 32, 32], per-channel constants."""
    images = np.concatenate([CIFAR[name][0] for name in names]) / 255.0
    mean = np.array([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1)
    std = np.array([0.2470, 0.2435, 0.2616]).reshape(1, 3, 1, 1)
    return torch.from_numpy((images - mean) / std).float()


def test_cifar10_spec():
    assert CIFAR10.format == "cifar-binary"
    assert CIFAR10.image_shape == (3, 32, 32)
    assert CIFAR10.classes == (
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
    )
    assert CIFAR10.mean == (0.4914, 0.4822, 0.4465)
    assert CIFAR10.std == (0.2470, 0.2435, 0.2616)
    assert CIFAR10.records_per_file == 10000
    assert CIFAR10.archive_md5 == "c32a1d4ab5d03f1284b67883e8d87530"
    assert CIFAR10.mirrors[0] + CIFAR10.archive == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert CIFAR10.files == CIFAR_NAMES


@pytest.mark.parametrize("layout", ["cifar10/cifar-10-batches-bin", "cifar10"])
def test_cifar10_loads(tmp_path, monkeypatch, layout):
    """Batch files load from cifar10/cifar-10-batches-bin/ or from cifar10/ itself: flattened
    channel-major, normalised per channel, labels as written, sha256 of every file recorded."""
    register_cifar(monkeypatch)
    folder = write_cifar(tmp_path / layout)
    ds = load_cifar(tmp_path)
    assert ds.folder == folder
    assert ds.x_train.shape == (5 * RECORDS, 3072) and ds.x_test.shape == (RECORDS, 3072)
    assert ds.num_features == 3072 and ds.image_shape == (3, 32, 32)
    assert torch.allclose(ds.x_train.view(-1, *ds.image_shape), expected_cifar(BATCHES), atol=1e-5)
    assert torch.allclose(ds.x_test.view(-1, 3, 32, 32), expected_cifar((TEST_BATCH,)), atol=1e-5)
    assert ds.y_train.tolist() == np.concatenate([CIFAR[n][1] for n in BATCHES]).tolist()
    assert ds.y_test.tolist() == CIFAR[TEST_BATCH][1].tolist()
    assert ds.y_train.dtype == torch.int64
    assert ds.hashes == {name: sha256(data) for name, data in CIFAR_BYTES.items()}


def test_cifar10_loads_without_class_names_file(tmp_path, monkeypatch):
    register_cifar(monkeypatch)
    write_cifar(tmp_path / "cifar10", meta=None)
    assert load_cifar(tmp_path).x_test.shape == (RECORDS, 3072)


def test_cifar10_wrong_class_names(tmp_path, monkeypatch):
    register_cifar(monkeypatch)
    write_cifar(tmp_path / "cifar10", meta=META.replace("truck", "lorry"))
    with pytest.raises(KdlabError, match=r"batches\.meta\.txt names the classes .*lorry"):
        load_cifar(tmp_path)


@pytest.mark.parametrize("cut", [-100, 3072, RECORDS * 3073 + 1], ids=["short", "one-record", "padded"])
def test_cifar10_truncated_batch(tmp_path, monkeypatch, cut):
    """A batch file whose size is not exactly the record count times 3073 bytes is rejected."""
    register_cifar(monkeypatch)
    data = CIFAR_BYTES["data_batch_3.bin"]
    data = data[:cut] if cut < len(data) else data + b"\0" * (cut - len(data))
    folder = write_cifar(tmp_path / "cifar10", {**CIFAR_BYTES, "data_batch_3.bin": data})
    with pytest.raises(KdlabError, match="truncated or padded") as info:
        load_cifar(tmp_path)
    assert str(folder / "data_batch_3.bin") in str(info.value)


def test_cifar10_label_beyond_the_classes(tmp_path, monkeypatch):
    register_cifar(monkeypatch)
    data = bytearray(CIFAR_BYTES[TEST_BATCH])
    data[3073] = 10  # the second record's label
    write_cifar(tmp_path / "cifar10", {**CIFAR_BYTES, TEST_BATCH: bytes(data)})
    with pytest.raises(KdlabError, match=r"test_batch.bin holds label 10 in record 1"):
        load_cifar(tmp_path)


def test_cifar10_missing_batch(tmp_path, monkeypatch):
    register_cifar(monkeypatch)
    files = {name: data for name, data in CIFAR_BYTES.items() if name != "data_batch_4.bin"}
    write_cifar(tmp_path / "cifar10", files)
    with pytest.raises(KdlabError, match=r"lacks data_batch_4\.bin"):
        load_cifar(tmp_path)


def changed_pixel(data: bytes) -> bytes:
    """The same batch with one pixel changed: still the right size and labels."""
    changed = bytearray(data)
    changed[-1] ^= 0xFF
    return bytes(changed)


def test_cifar10_hash_mismatch_against_known_hash(tmp_path, monkeypatch):
    """Where the spec knows a batch file's sha256, a file with other bytes fails it."""
    register_cifar(monkeypatch, raw_sha256={n: sha256(d) for n, d in CIFAR_BYTES.items()})
    write_cifar(
        tmp_path / "cifar10",
        {**CIFAR_BYTES, "data_batch_2.bin": changed_pixel(CIFAR_BYTES["data_batch_2.bin"])},
    )
    with pytest.raises(KdlabError, match=r"data_batch_2\.bin fails its hash check.*known for cifar10"):
        load_cifar(tmp_path)


def test_cifar10_hash_mismatch_against_manifest(tmp_path, monkeypatch):
    """A SHA256SUMS beside the batch files is checked: a file with other bytes fails it."""
    register_cifar(monkeypatch)
    folder = write_cifar(
        tmp_path / "cifar10", {**CIFAR_BYTES, TEST_BATCH: changed_pixel(CIFAR_BYTES[TEST_BATCH])}
    )
    (folder / "SHA256SUMS").write_text("".join(f"{sha256(d)}  {n}\n" for n, d in CIFAR_BYTES.items()))
    with pytest.raises(KdlabError, match=r"test_batch\.bin fails its hash check.*SHA256SUMS"):
        load_cifar(tmp_path)


# ---------------------------------------------------------------------------------------------
# CIFAR-10: downloading the archive
# ---------------------------------------------------------------------------------------------

ARCHIVE = "cifar-10-binary.tar.gz"


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A deterministic tar.gz of regular files (name -> bytes) and symbolic links (name -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return gz(buffer.getvalue())


def real_layout(files: dict[str, bytes] = CIFAR_BYTES) -> dict[str, bytes]:
    """The members of the real archive: everything under cifar-10-batches-bin/."""
    members = {"batches.meta.txt": META.encode(), "readme.html": b"<html></html>", **files}
    return {f"cifar-10-batches-bin/{name}": data for name, data in members.items()}


def serve_archive(server, monkeypatch, archive: bytes, md5_of: bytes | None = None) -> None:
    """Serve `archive` and register cifar10 with the md5 of `md5_of` (by default the archive)."""
    server.files[ARCHIVE] = archive
    register_cifar(monkeypatch, mirrors=(server.url,), archive_md5=md5(archive if md5_of is None else md5_of))


DOWNLOADED = sorted(
    f"cifar10/cifar-10-batches-bin/{n}" for n in (*CIFAR_NAMES, "batches.meta.txt", "SHA256SUMS")
)


def test_cifar10_download(server, monkeypatch, cache):
    """download=True fetches the archive (md5-checked), extracts the batch files into the cache
    with their sha256 in SHA256SUMS, keeps no archive, and loads; later loads need no request
    and check the files against SHA256SUMS."""
    serve_archive(server, monkeypatch, tar_gz(real_layout()))
    ds = load_cifar(download=True)
    folder = cache / "cifar10" / "cifar-10-batches-bin"
    assert ds.folder == folder
    assert files_under(cache) == DOWNLOADED
    assert ds.hashes == {name: sha256(data) for name, data in CIFAR_BYTES.items()}
    assert read_sums(folder / "SHA256SUMS") == ds.hashes
    assert server.requested == [f"/{ARCHIVE}"]
    assert torch.allclose(ds.x_test.view(-1, 3, 32, 32), expected_cifar((TEST_BATCH,)), atol=1e-5)
    server.requested.clear()
    assert load_cifar(download=True).folder == folder
    assert server.requested == []
    path = folder / "data_batch_5.bin"
    path.write_bytes(changed_pixel(path.read_bytes()))
    with pytest.raises(KdlabError, match=r"data_batch_5\.bin fails its hash check"):
        load_cifar(download=True)


def test_cifar10_corrupted_archive_leaves_nothing(server, monkeypatch, cache):
    """An archive whose md5 differs from the registered one is an error, and nothing at all
    (archive, temporary files, folders) is left in the cache."""
    good = tar_gz(real_layout())
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    serve_archive(server, monkeypatch, bytes(bad), md5_of=good)
    with pytest.raises(KdlabError, match=f"could not download {ARCHIVE}"):
        load_cifar(download=True)
    assert nothing_under(cache)


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        (
            {**real_layout(), "cifar-10-batches-bin/data_batch_1.bin": CIFAR_BYTES["data_batch_1.bin"][:-1]},
            "truncated or padded",
        ),
        (
            {k: v for k, v in real_layout().items() if not k.endswith(TEST_BATCH)},
            f"{ARCHIVE} lacks {TEST_BATCH}",
        ),
        ({**real_layout(), "cifar-10-batches-bin/batches.meta.txt": b"cat\ndog\n"}, "names the classes"),
        (None, "cannot extract"),
    ],
    ids=["truncated-member", "missing-member", "wrong-classes", "not-a-tar"],
)
def test_cifar10_bad_archive_with_the_right_md5_leaves_nothing(server, monkeypatch, cache, members, problem):
    """An archive that matches its md5 but holds unusable data is an error naming the problem,
    and nothing is left in the cache."""
    archive = tar_gz(members) if members is not None else gz(b"not a tar file" * 100)
    serve_archive(server, monkeypatch, archive)
    with pytest.raises(KdlabError, match=problem):
        load_cifar(download=True)
    assert nothing_under(cache)


def test_cifar10_archive_cannot_write_outside_its_folder(server, monkeypatch, cache, tmp_path):
    """Members with `..` or absolute paths and links are never written where they point: only
    the known file names are extracted, into the cache folder."""
    outside = tmp_path / "outside"
    members = {
        **real_layout(),
        "../escaped.bin": b"x",
        "cifar-10-batches-bin/../../../escaped2.txt": b"x",
        f"{outside}/absolute.txt": b"x",
    }
    links = {"cifar-10-batches-bin/link.bin": "/etc/passwd", "cifar-10-batches-bin/../linked": str(outside)}
    serve_archive(server, monkeypatch, tar_gz(members, links))
    ds = load_cifar(download=True)
    assert files_under(cache) == DOWNLOADED
    assert ds.hashes == {name: sha256(data) for name, data in CIFAR_BYTES.items()}
    assert not outside.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_cifar10_archive_with_a_batch_twice_is_refused(server, monkeypatch, cache):
    members = {**real_layout(), "other/data_batch_1.bin": CIFAR_BYTES["data_batch_2.bin"]}
    serve_archive(server, monkeypatch, tar_gz(members))
    with pytest.raises(KdlabError, match=r"holds data_batch_1\.bin twice"):
        load_cifar(download=True)
    assert nothing_under(cache)


def test_cifar10_partial_cache_folder_is_not_overwritten(server, monkeypatch, cache):
    """A partial extracted folder in the cache is reported, not silently replaced."""
    serve_archive(server, monkeypatch, tar_gz(real_layout()))
    write_cifar(cache / "cifar10" / "cifar-10-batches-bin", {TEST_BATCH: CIFAR_BYTES[TEST_BATCH]})
    with pytest.raises(KdlabError, match="exists but is incomplete"):
        load_cifar(download=True)
    assert server.requested == []


@pytest.mark.slow
def test_cifar10_trains_the_cnn_pair_end_to_end(tmp_path, monkeypatch):
    """On CIFAR-10 the protocols pick the CNN teacher and student, and the named class is omitted."""
    records = 30
    register_cifar(monkeypatch, records_per_file=records)
    write_cifar(
        tmp_path / "cifar10", {name: cifar_batch(i, records)[2] for i, name in enumerate(CIFAR_NAMES)}
    )
    out = tmp_path / "out"
    args = ["run", "mythical-digit", "--dataset", "cifar10", "--omit", "cat", "--epochs", "1"]
    assert main([*args, "--data-dir", str(tmp_path), "--out", str(out), "--quiet", "--no-download"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["arch"] == "cnn" and results["config"]["omit"] == ["cat"]
    records_by_name = {
        json.loads(p.read_text())["name"]: json.loads(p.read_text())
        for p in out.glob("models/**/record.json")
    }
    assert records_by_name["Teacher"]["spec"]["sizes"] == [3072, 32, 64, 128, 10]
    assert records_by_name["KD Nocat"]["spec"]["sizes"] == [3072, 8, 16, 32, 10]
    assert all(r["spec"]["arch"] == "cnn" for r in records_by_name.values())
    assert records_by_name["KD Nocat"]["transfer_size"] == 5 * records * 9 // 10
