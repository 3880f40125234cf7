"""Tests of the data layer (kdlab.data): IDX parsing, locating, hash checks, downloading.

Everything except the real-MNIST tests runs on tiny synthetic IDX files in tmp_path; downloads
come from an HTTP server on 127.0.0.1 that the tests start themselves.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

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
    write_idx,
)

from kdlab import KdlabError
from kdlab.data.base import DatasetSpec
from kdlab.data.datasets import DATASETS, MNIST, cache_dir, load_dataset

# ---------------------------------------------------------------------------------------------
# Helpers: synthetic IDX files and a data-set spec that matches them
# ---------------------------------------------------------------------------------------------

NAME = "synthetic-test"  # the name the synthetic spec is registered under in DATASETS
pytestmark = pytest.mark.usefixtures("cache")


ARRAYS = idx_arrays(12, 5, (3, 5), seed=0)
SYNTH = {stem: idx_bytes(a) for stem, a in ARRAYS.items()}  # raw IDX bytes by stem
write_files = write_idx


def register(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes] = SYNTH, **changes) -> DatasetSpec:
    """Register under NAME a copy of the MNIST spec whose hashes are those of `files`."""
    spec = replace(
        MNIST,
        name=NAME,
        raw_sha256={s: hashlib.sha256(b).hexdigest() for s, b in files.items()},
        gz_md5={s: hashlib.md5(gz(b)).hexdigest() for s, b in files.items()},
        **changes,
    )
    monkeypatch.setitem(DATASETS, NAME, spec)
    return spec


def load(**kwargs):
    """load_dataset of the synthetic data set, quietly and with downloads off unless asked."""
    kwargs.setdefault("download", False)
    return load_dataset(NAME, quiet=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# 1. The real MNIST from ../shared/data
# ---------------------------------------------------------------------------------------------

KNOWN_MNIST_RAW_SHA256 = {  # from ../shared/data/mnist/SHA256SUMS.raw
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


@pytest.fixture(scope="module")
def mnist(shared_data: Path):
    """The real MNIST, loaded once for this module (about 2 s)."""
    return load_dataset("mnist", data_dir=shared_data, download=False, quiet=True)


def test_real_mnist_shapes_and_dtypes(mnist, shared_data):
    """Real MNIST is 60000/10000 flattened 784-pixel float32 images with int64 labels."""
    assert_mnist_layout(mnist, shared_data / "mnist")
    assert mnist.num_features == 784
    assert mnist.classes == tuple("0123456789")


def test_real_mnist_label_counts(mnist):
    """The per-class label counts are MNIST's well-known ones."""
    train = torch.bincount(mnist.y_train, minlength=10).tolist()
    test = torch.bincount(mnist.y_test, minlength=10).tolist()
    assert train == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert test == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_is_normalised(mnist):
    """Train pixels have mean ~0 and std ~1 after normalisation, and the expected range."""
    x = mnist.x_train.double()
    assert abs(x.mean().item()) < 1e-3
    assert abs(x.std().item() - 1.0) < 1e-3
    assert x.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    assert x.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-5)


def test_real_mnist_hashes_are_the_known_raw_sha256(mnist):
    """The recorded hashes are the sha256 of the decompressed IDX bytes of the four files."""
    assert mnist.hashes == KNOWN_MNIST_RAW_SHA256


# ---------------------------------------------------------------------------------------------
# 2. Gzipped and raw IDX files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [True, False], ids=["gzipped", "raw"])
def test_gzipped_and_raw_idx_load(tmp_path, monkeypatch, gzipped):
    """Both `<stem>.gz` and raw `<stem>` files load, with the exact values normalised."""
    register(monkeypatch)
    write_files(tmp_path / "data" / "mnist", SYNTH, gzipped=gzipped)
    ds = load(data_dir=tmp_path / "data")
    expected_x = (ARRAYS[TRAIN_IMAGES].reshape(12, 15) / 255.0 - MNIST.mean) / MNIST.std
    assert ds.x_train.shape == (12, 15)
    assert ds.x_test.shape == (5, 15)
    assert torch.allclose(ds.x_train, torch.from_numpy(expected_x).float(), atol=1e-6)
    assert ds.y_train.tolist() == ARRAYS[TRAIN_LABELS].tolist()
    assert ds.y_test.tolist() == ARRAYS[TEST_LABELS].tolist()
    assert ds.hashes == DATASETS[NAME].raw_sha256


# ---------------------------------------------------------------------------------------------
# 3. Errors: each a KdlabError that names the problem
# ---------------------------------------------------------------------------------------------


def test_missing_data_dir(tmp_path):
    """A --data-dir that does not exist is an error naming it."""
    missing = tmp_path / "no-such-folder"
    with pytest.raises(KdlabError, match="does not exist") as info:
        load_dataset("mnist", data_dir=missing, download=False, quiet=True)
    assert str(missing) in str(info.value)


def test_partial_folder_names_the_missing_files(tmp_path, monkeypatch):
    """A folder with only some of the four files is an error listing the missing ones."""
    register(monkeypatch)
    some = {TRAIN_IMAGES: SYNTH[TRAIN_IMAGES], TEST_LABELS: SYNTH[TEST_LABELS]}
    write_files(tmp_path / "mnist", some)
    with pytest.raises(KdlabError, match="lacks") as info:
        load(data_dir=tmp_path)
    message = str(info.value)
    assert TRAIN_LABELS in message and TEST_IMAGES in message
    assert TRAIN_IMAGES not in message and TEST_LABELS not in message


def test_truncated_gzip(tmp_path, monkeypatch):
    """A gzip file cut short is reported as a truncated gzip file, by name."""
    register(monkeypatch)
    folder = write_files(tmp_path / "mnist", SYNTH)
    path = folder / f"{TRAIN_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(KdlabError, match="truncated gzip") as info:
        load(data_dir=tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("cut", "problem"),
    [(-7, "truncated or padded"), (6, "truncated inside its IDX header")],
    ids=["data", "header"],
)
def test_truncated_raw_idx(tmp_path, monkeypatch, cut, problem):
    """A raw IDX file cut short, in its data or in its header, is reported by name."""
    register(monkeypatch)
    folder = write_files(tmp_path / "mnist", SYNTH, gzipped=False)
    path = folder / TRAIN_IMAGES
    path.write_bytes(SYNTH[TRAIN_IMAGES][:cut])
    with pytest.raises(KdlabError, match=problem) as info:
        load(data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_wrong_idx_magic_number(tmp_path, monkeypatch):
    """A file whose IDX magic number is not 0x000008<ndim> is rejected, naming the magic."""
    register(monkeypatch)
    folder = write_files(tmp_path / "mnist", SYNTH, gzipped=False)
    bad = bytearray(SYNTH[TEST_LABELS])
    bad[2] = 0x09  # signed bytes instead of unsigned
    (folder / TEST_LABELS).write_bytes(bytes(bad))
    with pytest.raises(KdlabError, match="wrong IDX magic number 0x00000901") as info:
        load(data_dir=tmp_path)
    assert TEST_LABELS in str(info.value)


def test_hash_mismatch(tmp_path, monkeypatch):
    """A file that parses fine but holds different bytes fails its hash check."""
    register(monkeypatch)
    changed = bytearray(SYNTH[TRAIN_IMAGES])
    changed[-1] ^= 0xFF  # one pixel differs: still a valid IDX file
    write_files(tmp_path / "mnist", {**SYNTH, TRAIN_IMAGES: bytes(changed)})
    with pytest.raises(KdlabError, match="fails its hash check") as info:
        load(data_dir=tmp_path)
    assert TRAIN_IMAGES in str(info.value)


def test_label_and_image_counts_must_agree(tmp_path, monkeypatch):
    """Hash-valid files with 12 train images but 11 train labels are rejected."""
    files = {**SYNTH, TRAIN_LABELS: idx_bytes(ARRAYS[TRAIN_LABELS][:11])}
    register(monkeypatch, files)
    write_files(tmp_path / "mnist", files)
    with pytest.raises(KdlabError, match="train split has 12 images but 11 labels"):
        load(data_dir=tmp_path)


def test_labels_beyond_the_classes(tmp_path, monkeypatch):
    """A label outside the spec's classes (10 for the digits 0-9) is rejected."""
    labels = ARRAYS[TEST_LABELS].copy()
    labels[0] = 10
    files = {**SYNTH, TEST_LABELS: idx_bytes(labels)}
    register(monkeypatch, files)
    write_files(tmp_path / "mnist", files)
    with pytest.raises(KdlabError, match="class 10"):
        load(data_dir=tmp_path)


def test_unknown_dataset_name():
    """An unknown data-set name is an error that lists the known ones."""
    with pytest.raises(KdlabError, match=r"unknown data set 'no-such-set'.*mnist"):
        load_dataset("no-such-set", download=False, quiet=True)


# ---------------------------------------------------------------------------------------------
# 4. Where data is looked for
# ---------------------------------------------------------------------------------------------


def test_torchvision_layout_is_accepted(tmp_path, monkeypatch):
    """torchvision's `<root>/MNIST/raw/` layout is found under a --data-dir."""
    register(monkeypatch)
    folder = write_files(tmp_path / "MNIST" / "raw", SYNTH, gzipped=False)
    assert load(data_dir=tmp_path).folder == folder


def test_search_order_data_dir_then_env_then_cache(tmp_path, monkeypatch, cache):
    """With complete copies everywhere: --data-dir wins, then $KDLAB_DATA, then the cache."""
    register(monkeypatch)
    in_arg = write_files(tmp_path / "arg" / "mnist", SYNTH)
    in_env = write_files(tmp_path / "env" / "MNIST" / "raw", SYNTH)
    in_cache = write_files(cache / "mnist", SYNTH)
    monkeypatch.setenv("KDLAB_DATA", str(tmp_path / "env"))
    assert load(data_dir=tmp_path / "arg").folder == in_arg
    assert load().folder == in_env
    monkeypatch.delenv("KDLAB_DATA")
    assert load().folder == in_cache


def test_kdlab_cache_overrides_the_cache_folder(tmp_path, monkeypatch):
    """$KDLAB_CACHE sets the cache folder; without it the cache is pooch's per-user one."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("KDLAB_CACHE")
    assert cache_dir() != tmp_path / "elsewhere"
    assert "kdlab" in str(cache_dir())


def test_download_off_with_nothing_present(tmp_path, monkeypatch, cache):
    """With no data anywhere and download=False the error says so, naming where it looked."""
    register(monkeypatch)
    (tmp_path / "empty").mkdir()
    with pytest.raises(KdlabError, match=r"downloads are off") as info:
        load(data_dir=tmp_path / "empty", download=False)
    assert str(tmp_path / "empty") in str(info.value) and str(cache) in str(info.value)
    assert files_under(cache) == []


# ---------------------------------------------------------------------------------------------
# 5. Downloading, from an HTTP server on 127.0.0.1
# ---------------------------------------------------------------------------------------------


def serve_all(server, prefix: str = "") -> None:
    server.files.update({f"{prefix}{stem}.gz": gz(data) for stem, data in SYNTH.items()})


def test_download_fills_the_cache_and_loads(server, monkeypatch, cache):
    """download=True fetches the four .gz files into the cache, loads them, and later loads
    come from the cache without any request."""
    serve_all(server)
    spec = register(monkeypatch, mirrors=(server.url,))
    ds = load(download=True)
    assert ds.folder == cache / "mnist"
    assert files_under(cache) == sorted(f"mnist/{stem}.gz" for stem in STEMS)
    assert ds.hashes == spec.raw_sha256
    assert ds.y_train.tolist() == ARRAYS[TRAIN_LABELS].tolist()
    assert sorted(server.requested) == sorted(f"/{stem}.gz" for stem in STEMS)
    server.requested.clear()
    assert load(download=True).folder == cache / "mnist"
    assert server.requested == []


def test_download_tries_the_next_mirror(server, monkeypatch, cache):
    """A mirror that 404s is skipped for the next one."""
    serve_all(server, prefix="good/")
    register(monkeypatch, mirrors=(server.url + "gone/", server.url + "good/"))
    assert load(download=True).folder == cache / "mnist"
    assert f"/gone/{TRAIN_IMAGES}.gz" in server.requested
    assert f"/good/{TRAIN_IMAGES}.gz" in server.requested


def test_corrupted_download_leaves_no_file(server, monkeypatch, cache):
    """A served file whose md5 differs from the registered one is an error naming it, and
    neither it nor any temporary file is left in the cache (the earlier good files stay)."""
    serve_all(server)
    bad = bytearray(gz(SYNTH[TEST_IMAGES]))
    bad[len(bad) // 2] ^= 0xFF
    server.files[f"{TEST_IMAGES}.gz"] = bytes(bad)
    register(monkeypatch, mirrors=(server.url,))
    with pytest.raises(KdlabError, match=f"could not download {TEST_IMAGES}.gz"):
        load(download=True)
    assert files_under(cache) == [f"mnist/{TRAIN_IMAGES}.gz", f"mnist/{TRAIN_LABELS}.gz"]


def test_download_404_names_the_file(server, monkeypatch, cache):
    """A file the mirror does not have is an error naming the file and the HTTP status."""
    serve_all(server)
    del server.files[f"{TEST_LABELS}.gz"]
    register(monkeypatch, mirrors=(server.url,))
    with pytest.raises(KdlabError, match=f"could not download {TEST_LABELS}.gz") as info:
        load(download=True)
    assert "404" in str(info.value)
    assert f"mnist/{TEST_LABELS}.gz" not in files_under(cache)


def test_interrupted_download_resumes(server, monkeypatch, cache):
    """After a download failed part-way, the next download=True run fetches only the files
    still missing from the cache and loads, instead of failing on the partial cache folder."""
    serve_all(server)
    missing = server.files.pop(f"{TEST_LABELS}.gz")
    register(monkeypatch, mirrors=(server.url,))
    with pytest.raises(KdlabError, match=TEST_LABELS):
        load(download=True)
    assert len(files_under(cache)) == 3
    with pytest.raises(KdlabError, match=f"lacks {TEST_LABELS}"):
        load(download=False)  # without downloads a partial cache is still an error
    server.files[f"{TEST_LABELS}.gz"] = missing
    server.requested.clear()
    assert load(download=True).folder == cache / "mnist"
    assert server.requested == [f"/{TEST_LABELS}.gz"]
