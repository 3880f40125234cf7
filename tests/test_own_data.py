"""Your own data set: an .npz file read without unpickling, checked array by array, normalised
with its training images' statistics; and `kdlab data pack` making one from image folders."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from kdlab import KdlabError
from kdlab.cli import main
from kdlab.data.datasets import DATASETS, MNIST, _load_idx, load_dataset, locate

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.fixture(scope="module")
def mnist_raw(shared_data) -> dict[str, np.ndarray]:
    """The real MNIST images (uint8) and labels, as the IDX files hold them."""
    arrays, _, _ = _load_idx(MNIST, locate(MNIST, shared_data, False, True))
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def small(raw: dict[str, np.ndarray], n_train: int = 2000, n_test: int = 1000) -> dict[str, np.ndarray]:
    return {
        "x_train": raw["x_train"][:n_train],
        "y_train": raw["y_train"][:n_train],
        "x_test": raw["x_test"][:n_test],
        "y_test": raw["y_test"][:n_test],
    }


def toy(**changes) -> dict[str, np.ndarray]:
    """A valid tiny data set: 3 classes of 4x5 grey images, every class in both splits."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (12, 4, 5), dtype=np.uint8),
        "y_train": np.arange(12) % 3,
        "x_test": rng.integers(0, 256, (6, 4, 5), dtype=np.uint8),
        "y_test": np.arange(6) % 3,
        "classes": np.array(["ant", "bee", "cat"]),
    }
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def save(path: Path, arrays: dict) -> Path:
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def test_toy_npz_loads(tmp_path):
    path = save(tmp_path / "toy.npz", toy())
    data = load_dataset(str(path))
    assert data.classes == ("ant", "bee", "cat")
    assert data.image_shape == (1, 4, 5) and data.x_train.shape == (12, 20)
    assert data.y_test.tolist() == [0, 1, 2, 0, 1, 2] and data.y_train.dtype == torch.int64
    assert data.hashes == {"npz": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_unsigned_labels(tmp_path):
    arrays = toy(y_train=(np.arange(12) % 3).astype(np.uint64), y_test=(np.arange(6) % 3).astype(np.uint8))
    assert (
        load_dataset(str(save(tmp_path / "u.npz", arrays))).y_train.tolist() == (np.arange(12) % 3).tolist()
    )


def test_npz_in_a_config_file_with_class_names(tmp_path, monkeypatch):
    """`dataset = "PATH.npz"` in a --config file, and --omit by one of the file's class names."""
    save(tmp_path / "toy.npz", toy())
    config = tmp_path / "c.toml"
    config.write_text('dataset = "toy.npz"\nomit = ["bee"]\nteacher_hidden = [8]\nstudent_hidden = [4]\n')
    out = tmp_path / "out"
    args = ["run", "mythical-digit", "--config", str(config), "--out", str(out), "--epochs", "1", "--quiet"]
    monkeypatch.chdir(tmp_path)  # a relative path is read from where kdlab runs
    assert main(args) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["config"]["dataset"] == "toy.npz" and result["classes"] == ["ant", "bee", "cat"]
    assert result["omitted_classes"] == ["bee"] and "KD Nobee" in result["table"]


def test_classes_default_to_indices(tmp_path):
    data = load_dataset(str(save(tmp_path / "toy.npz", toy(classes=None))))
    assert data.classes == ("0", "1", "2")


def test_normalised_per_channel_with_training_statistics(tmp_path):
    """Colour images with very different channels: each channel of the training images gets
    mean 0 and std 1; the test images use the training statistics, not their own."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (40, 6, 6, 3)).astype(np.float64)
    x[..., 0] *= 0.1
    x[..., 2] = 200 + x[..., 2] * 0.2
    x = x.astype(np.uint8)
    x_test = np.full((6, 6, 6, 3), 255, dtype=np.uint8)
    arrays = toy(x_train=x, y_train=np.arange(40) % 3, x_test=x_test)
    data = load_dataset(str(save(tmp_path / "rgb.npz", arrays)))
    assert data.image_shape == (3, 6, 6)
    channels = data.x_train.view(40, 3, -1).double()
    assert torch.allclose(channels.mean(dim=(0, 2)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(
        channels.std(dim=(0, 2), correction=0), torch.ones(3, dtype=torch.float64), atol=1e-5
    )
    expected = (1.0 - torch.tensor(data.spec.mean)) / torch.tensor(data.spec.std)
    assert torch.allclose(data.x_test.view(6, 3, -1)[0, :, 0], expected)
    # channels last in the file, channel-major in the tensor
    raw = (x[0, 0, 0].astype(np.float32) / 255 - np.array(data.spec.mean)) / np.array(data.spec.std)
    assert np.allclose(data.x_train.view(40, 3, 6, 6)[0, :, 0, 0].numpy(), raw, atol=1e-5)


def test_float_images_in_unit_range_equal_uint8(tmp_path):
    arrays = toy()
    as_float = {**arrays, "x_train": arrays["x_train"] / 255.0, "x_test": arrays["x_test"] / 255.0}
    a = load_dataset(str(save(tmp_path / "u8.npz", arrays)))
    b = load_dataset(str(save(tmp_path / "f.npz", as_float)))
    assert torch.allclose(a.x_train, b.x_train, atol=1e-5) and torch.allclose(a.x_test, b.x_test, atol=1e-5)


def test_real_mnist_npz_equals_the_builtin_loader(mnist_raw, shared_data, tmp_path, monkeypatch):
    """The same images give the same tensors once the built-in loader uses the statistics the
    npz loader computed from the training images (which are MNIST's published ones, rounded)."""
    data = load_dataset(str(save(tmp_path / "mnist.npz", mnist_raw)))
    assert data.spec.mean[0] == pytest.approx(0.1307, abs=1e-4)
    assert data.spec.std[0] == pytest.approx(0.3081, abs=1e-4)
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(MNIST, mean=data.spec.mean, std=data.spec.std))
    builtin = load_dataset("mnist", shared_data, download=False, quiet=True)
    assert torch.equal(data.x_train, builtin.x_train) and torch.equal(data.x_test, builtin.x_test)
    assert torch.equal(data.y_train, builtin.y_train) and torch.equal(data.y_test, builtin.y_test)


# ---------------------------------------------------------------------------------------------
# Malformed files: one line each
# ---------------------------------------------------------------------------------------------

BAD = {
    "missing array": (toy(y_test=None), "lacks y_test"),
    "unknown array": (toy(x_val=np.zeros((2, 4, 5), np.uint8)), "unknown arrays x_val"),
    "lengths": (toy(y_train=np.arange(11) % 3), "x_train has 12 images but y_train 11 labels"),
    "label too large": (toy(y_test=np.array([0, 1, 2, 3, 1, 2])), "y_test holds label 3, outside 0..2"),
    "negative label": (toy(y_train=np.arange(12) % 3 - 1), "y_train holds label -1, outside 0..2"),
    "float labels": (toy(y_train=(np.arange(12) % 3).astype(float)), "y_train must be a 1-D integer array"),
    "2-D labels": (toy(y_test=(np.arange(6) % 3).reshape(6, 1)), "y_test must be a 1-D integer array"),
    "nan pixel": (toy(x_train=np.full((12, 4, 5), np.nan)), "non-finite pixels"),
    "inf pixel": (toy(x_test=np.full((6, 4, 5), np.inf)), "x_test holds non-finite pixels"),
    "float range": (toy(x_train=np.full((12, 4, 5), 255.0)), "float images must lie in [0, 1]"),
    "int32 images": (toy(x_train=np.zeros((12, 4, 5), np.int32)), "must be uint8 (0..255) or float"),
    "class missing from test": (toy(y_test=np.array([0, 1, 0, 1, 0, 1])), "class 2 has no image in the test"),
    "class missing from train": (toy(y_train=np.arange(12) % 2), "class 2 has no image in the train"),
    "shapes differ": (toy(x_test=np.zeros((6, 5, 4), np.uint8)), "training images are [4, 5] but test"),
    "channels differ": (toy(x_test=np.zeros((6, 4, 5, 3), np.uint8)), "training images are [4, 5] but test"),
    "flat images": (toy(x_train=np.zeros((12, 20), np.uint8)), "shaped [N, H, W] or [N, H, W, C]"),
    "empty split": (toy(x_test=np.zeros((0, 4, 5), np.uint8), y_test=np.zeros(0, int)), "x_test is empty"),
    "bytes class names": (toy(classes=np.array([b"a", b"b", b"c"])), "1-D unicode string array"),
    "repeated class names": (toy(classes=np.array(["a", "b", "a"])), "class names repeat"),
    "blank class name": (toy(classes=np.array(["a", " ", "c"])), "class names must be non-empty"),
    "huge label without classes": (
        toy(classes=None, y_test=np.array([0, 1, 2, 0, 1, 10**12])),
        "labels go up to 1000000000000 but there are only 12 training images",
    ),
    "one class": (
        toy(classes=np.array(["a"]), y_train=np.zeros(12, int), y_test=np.zeros(6, int)),
        "at least two classes",
    ),
    "constant images": (toy(x_train=np.zeros((12, 4, 5), np.uint8)), "standard deviation 0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_npz_is_a_one_line_error(case, tmp_path):
    arrays, message = BAD[case]
    path = save(tmp_path / "bad.npz", arrays)
    with pytest.raises(KdlabError, match=re.escape(message)) as e:
        load_dataset(str(path))
    assert "\n" not in str(e.value)


def test_object_arrays_are_never_unpickled(tmp_path, monkeypatch):
    path = save(tmp_path / "obj.npz", toy(classes=np.array(["a", "b", "c"], dtype=object)))
    monkeypatch.setattr("pickle.loads", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(KdlabError, match=r"not a readable \.npz file: Object arrays cannot be loaded"):
        load_dataset(str(path))


def test_files_that_are_not_npz(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("hello")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    other_zip = tmp_path / "other.npz"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("x_train", "not an array")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(save(tmp_path / "ok.npz", toy()).read_bytes()[:200])
    (tmp_path / "folder.npz").mkdir()
    cases = {
        text: "is not an .npz file",
        npy: "is not an .npz file",
        other_zip: "member 'x_train' is not a numpy array",
        broken: "is not a readable .npz file",
        tmp_path / "missing.npz": "does not exist",
        tmp_path / "folder.npz": "is not a file",
    }
    for path, message in cases.items():
        with pytest.raises(KdlabError, match=message) as e:
            load_dataset(str(path))
        assert "\n" not in str(e.value), path


def test_cli_bad_npz_writes_nothing(tmp_path, capsys):
    path = save(tmp_path / "bad.npz", toy(y_test=None))
    out = tmp_path / "out"
    code = main(["run", "mythical-digit", "--dataset", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("kdlab: error:") and err.count("\n") == 1 and "lacks y_test" in err
    assert not out.exists()


def test_unknown_class_name_of_an_npz(tmp_path, capsys):
    path = save(tmp_path / "toy.npz", toy())
    out = tmp_path / "out"
    code = main(["run", "mythical-digit", "--dataset", str(path), "--omit", "dog", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "unknown class 'dog'; classes are ant, bee, cat" in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# End to end on real MNIST images
# ---------------------------------------------------------------------------------------------

BUDGET = ["--epochs", "1", "--subset", "2000", "--quiet"]


@pytest.mark.slow
def test_npz_run_gives_the_builtin_table(mnist_raw, shared_data, tmp_path, monkeypatch):
    """MNIST packed into an .npz and run end to end gives the built-in loader's table exactly
    (with the normalisation the npz loader computed); the file's sha256 is the data's identity."""
    path = save(tmp_path / "mnist.npz", {**mnist_raw, "classes": np.array([str(d) for d in range(10)])})
    assert (
        main(["run", "mythical-digit", "--dataset", str(path), "--out", str(tmp_path / "npz"), *BUDGET]) == 0
    )
    own = load_dataset(str(path))
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(MNIST, mean=own.spec.mean, std=own.spec.std))
    args = ["run", "mythical-digit", "--data-dir", str(shared_data), "--out", str(tmp_path / "idx"), *BUDGET]
    assert main(args) == 0
    a = json.loads((tmp_path / "npz" / "results.json").read_text())
    b = json.loads((tmp_path / "idx" / "results.json").read_text())
    assert a["table"] == b["table"] and a["overall"] == b["overall"] and a["calibration"] == b["calibration"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert a["data_sha256"] == {"npz": digest} and a["config"]["dataset"] == str(path)
    assert a["models"]["Teacher"][0]["key"] != b["models"]["Teacher"][0]["key"]
    record = json.loads((tmp_path / "npz" / a["models"]["KD No3"][0]["folder"] / "record.json").read_text())
    assert record["identity"]["rows"]["data_sha256"] == {"npz": digest}


@pytest.mark.slow
def test_npz_class_names_and_every_digit(mnist_raw, tmp_path):
    """--omit and --classes take the file's class names; every-digit runs on an npz too."""
    path = save(tmp_path / "named.npz", {**small(mnist_raw), "classes": np.array(NAMES)})
    out = tmp_path / "md"
    assert (
        main(["run", "mythical-digit", "--dataset", str(path), "--omit", "three", "--out", str(out), *BUDGET])
        == 0
    )
    result = json.loads((out / "results.json").read_text())
    assert result["omitted_classes"] == ["three"] and "KD Nothree+B" in result["table"]
    assert result["classes"] == list(NAMES)
    out = tmp_path / "ed"
    args = ["run", "every-digit", "--dataset", str(path), "--classes", "7", "--val-size", "200"]
    assert main([*args, "--out", str(out), *BUDGET, "--subset", "1800"]) == 0  # all 2000 but the 200
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["class"] for r in rows] == ["seven"]


# ---------------------------------------------------------------------------------------------
# kdlab data pack
# ---------------------------------------------------------------------------------------------


def image_folder(root: Path, raw: dict[str, np.ndarray], per_class: int, classes=(3, 1, 7)) -> dict:
    """PNGs of real MNIST digits in one subfolder per class (named by a word); the images by name."""
    from PIL import Image

    written = {}
    for digit in classes:
        folder = root / NAMES[digit]
        folder.mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(raw["y_train"] == digit)[:per_class]):
            Image.fromarray(raw["x_train"][index]).save(folder / f"{i:03d}.png")
            written[(NAMES[digit], i)] = raw["x_train"][index]
    return written


def test_pack_a_folder_with_a_stratified_seeded_split(mnist_raw, tmp_path, capsys):
    written = image_folder(tmp_path / "img", mnist_raw, per_class=10)
    (tmp_path / "img" / "one" / ".DS_Store").write_text("skipped")
    out = tmp_path / "d.npz"
    assert main(["data", "pack", str(tmp_path / "img"), str(out), "--seed", "3"]) == 0
    assert "3 classes, 24 training and 6 test images" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert arrays["classes"].tolist() == ["one", "seven", "three"]  # sorted folder names
    assert arrays["x_train"].dtype == np.uint8 and arrays["x_train"].shape == (24, 28, 28)
    assert np.bincount(arrays["y_test"]).tolist() == [2, 2, 2]  # round(0.2 * 10) of each class
    # every image is in exactly one split, under its own class
    pool = {(c, img.tobytes()) for (c, _), img in written.items()}
    got = [
        (arrays["classes"][y], x.tobytes())
        for s in ("train", "test")
        for x, y in zip(arrays[f"x_{s}"], arrays[f"y_{s}"])
    ]
    assert len(got) == 30 and set(got) == pool
    data = load_dataset(str(out))
    assert data.classes == ("one", "seven", "three")
    # the same seed gives the same file; another seed another split
    again, other = tmp_path / "again.npz", tmp_path / "other.npz"
    main(["data", "pack", str(tmp_path / "img"), str(again), "--seed", "3"])
    main(["data", "pack", str(tmp_path / "img"), str(other), "--seed", "4"])
    with np.load(again) as a, np.load(other) as b:
        assert np.array_equal(a["x_test"], arrays["x_test"]) and not np.array_equal(
            b["x_test"], arrays["x_test"]
        )


def test_pack_keeps_a_given_train_test_split_and_resizes_colour(mnist_raw, tmp_path):
    from PIL import Image

    for split, n in (("train", 4), ("test", 2)):
        image_folder(
            tmp_path / "img" / split, {k: v[n:] for k, v in mnist_raw.items()}, per_class=n, classes=(0, 1)
        )
    Image.fromarray(np.zeros((10, 12, 3), np.uint8) + 50).save(tmp_path / "img" / "test" / "one" / "z.png")
    out = tmp_path / "d.npz"
    assert main(["data", "pack", str(tmp_path / "img"), str(out), "--size", "8", "6"]) == 0
    with np.load(out) as f:
        assert f["x_train"].shape == (8, 6, 8, 3) and f["x_test"].shape == (5, 6, 8, 3)  # RGB: one is colour
        assert f["classes"].tolist() == ["one", "zero"] and f["y_test"].tolist() == [0, 0, 0, 1, 1]
        assert (f["x_test"][2] == 50).all()  # one/z.png, after one/000.png and one/001.png


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda d: d.mkdir(), [], "needs at least two class subfolders, not 0"),
        (lambda d: (d / "a").mkdir(parents=True) or (d / "b").mkdir(), [], "hold no image"),
        (lambda d: None, [], "does not exist"),
        ("unreadable", [], "cannot read image"),
        ("sizes", [], "give --size W H"),
        ("singleton", [], "a split needs at least 2"),
        ("ok", ["--size", "3"], "--size takes a width and a height"),
        ("ok", ["--test-fraction", "1"], "--test-fraction must be in (0, 1)"),
        ("ok", ["--test-fraction", "nan"], "--test-fraction must be in (0, 1)"),
    ],
)
def test_pack_errors_are_one_line_and_write_nothing(setup, args, message, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "img"
    if callable(setup):
        setup(folder)
    else:
        for name in ("a", "b"):
            (folder / name).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((5, 5), 40 * i, np.uint8)).save(folder / name / f"{i}.png")
        if setup == "unreadable":
            (folder / "b" / "3.png").write_text("not a png")
        elif setup == "sizes":
            Image.fromarray(np.zeros((5, 6), np.uint8)).save(folder / "a" / "9.png")
        elif setup == "singleton":
            for i in (1, 2):
                (folder / "b" / f"{i}.png").unlink()
    out = tmp_path / "d.npz"
    code = main(["data", "pack", str(folder), str(out), *args])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("kdlab: error:") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_pack_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "d.npz"
    out.write_text("keep me")
    (tmp_path / "img").mkdir()
    assert main(["data", "pack", str(tmp_path / "img"), str(out)]) == 1
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me"
