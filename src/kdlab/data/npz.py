"""The user's own data set: one `.npz` file, checked array by array, never unpickled.

The file holds `x_train`, `y_train`, `x_test`, `y_test` and optionally `classes`:

* images `[N, H, W]` (one channel) or `[N, H, W, C]` (channels last), uint8 in 0..255 or
  float in [0, 1], the same height, width and channels in both splits, every pixel finite;
* labels: 1-D integer arrays, one per image, in `0..C-1`, every class present in both splits;
* `classes`: C names as a unicode string array (`np.array(["cat", "dog"])`, not dtype=object:
  the file is read with `allow_pickle=False`). Without it, C is the largest label + 1 and
  the classes are named by their indices.

Normalisation (per channel) uses the mean and standard deviation of the training images. The
sha256 of the file's bytes is the data set's identity in the model store and in every record.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from kdlab.data.base import NPZ, Dataset, DatasetSpec, normalise, scaled
from kdlab.errors import KdlabError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
CLASSES = "classes"
HASH_KEY = "npz"  # the key of the file's sha256 in `Dataset.hashes`


def read_arrays(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """The file's arrays (without unpickling anything) and the sha256 of its bytes."""
    if not path.exists():
        raise KdlabError(f"data file {path} does not exist")
    if not path.is_file():
        raise KdlabError(f"data file {path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KdlabError(f"cannot read {path}: {e.strerror}") from e
    digest = hashlib.sha256(data).hexdigest()
    if not data.startswith(b"PK"):
        raise KdlabError(f"{path} is not an .npz file (numpy.savez writes a zip archive)")
    arrays = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            for name in npz.files:
                value = npz[name]
                if not isinstance(value, np.ndarray):
                    raise KdlabError(f"{path} is a zip but not an .npz: member {name!r} is not a numpy array")
                arrays[name] = value
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise KdlabError(f"{path} is not a readable .npz file: {detail}") from None
    return arrays, digest


def _check_images(path: Path, arrays: dict[str, np.ndarray]) -> None:
    train, test = arrays["x_train"], arrays["x_test"]
    for name in ("x_train", "x_test"):
        x = arrays[name]
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise KdlabError(f"{path}: {name} must be uint8 (0..255) or float (0..1), not {x.dtype}")
        if x.ndim not in (3, 4) or min(x.shape[1:], default=0) < 1:
            raise KdlabError(f"{path}: {name} must be shaped [N, H, W] or [N, H, W, C], not {list(x.shape)}")
        if len(x) == 0:
            raise KdlabError(f"{path}: {name} is empty: both splits need images")
        if x.dtype != np.uint8:
            if not np.isfinite(x).all():
                raise KdlabError(f"{path}: {name} holds non-finite pixels (NaN or inf)")
            if x.min() < 0 or x.max() > 1:
                raise KdlabError(
                    f"{path}: float images must lie in [0, 1], but {name} spans "
                    f"[{float(x.min()):g}, {float(x.max()):g}] (store uint8 0..255, or scale them)"
                )
    if train.shape[1:] != test.shape[1:]:
        raise KdlabError(
            f"{path}: training images are {list(train.shape[1:])} but test images {list(test.shape[1:])}"
        )


def _check_labels(path: Path, arrays: dict[str, np.ndarray]) -> int:
    """The number of classes, C; every label an integer in 0..C-1."""
    for split in ("train", "test"):
        y, x = arrays[f"y_{split}"], arrays[f"x_{split}"]
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise KdlabError(f"{path}: y_{split} must be a 1-D integer array, not {y.dtype} {list(y.shape)}")
        if len(y) != len(x):
            raise KdlabError(f"{path}: x_{split} has {len(x)} images but y_{split} {len(y)} labels")
    if CLASSES in arrays:
        names = arrays[CLASSES]
        if names.dtype.kind != "U" or names.ndim != 1:
            raise KdlabError(
                f"{path}: classes must be a 1-D unicode string array (np.array(['a', 'b'])), "
                f"not {names.dtype} {list(names.shape)}"
            )
        count = len(names)
    else:
        count = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
        if count > len(arrays["y_train"]):  # each class needs a training image
            raise KdlabError(
                f"{path}: labels go up to {count - 1} but there are only {len(arrays['y_train'])} "
                "training images (without `classes`, the classes are 0..largest label)"
            )
    for split in ("train", "test"):
        y = arrays[f"y_{split}"]
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= count:
            bad = low if low < 0 else high
            raise KdlabError(f"{path}: y_{split} holds label {bad}, outside 0..{count - 1}")
        missing = np.flatnonzero(np.bincount(y.astype(np.int64), minlength=count) == 0)
        if len(missing):
            raise KdlabError(
                f"{path}: class {', '.join(map(str, missing[:10].tolist()))} has no image in the "
                f"{split} split (every class needs training and test images)"
            )
    return count


def _class_names(path: Path, arrays: dict[str, np.ndarray], count: int) -> tuple[str, ...]:
    if CLASSES not in arrays:
        return tuple(str(c) for c in range(count))
    names = tuple(str(n) for n in arrays[CLASSES])
    if any(not n.strip() or n != n.strip() for n in names):
        raise KdlabError(f"{path}: class names must be non-empty, without leading or trailing spaces")
    if len(set(names)) != len(names):
        raise KdlabError(f"{path}: class names repeat")
    return names


def channel_major(x: np.ndarray) -> np.ndarray:
    """[N, H, W] or [N, H, W, C] images as [N, C, H, W]."""
    return x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)


def load_npz(path: Path) -> Dataset:
    """The data set in `path`, every array checked (one-line errors), normalised with the
    statistics of its training images."""
    arrays, digest = read_arrays(path)
    missing = [name for name in ARRAYS if name not in arrays]
    unknown = sorted(set(arrays) - {*ARRAYS, CLASSES})
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"holds unknown arrays {', '.join(unknown)}"
        raise KdlabError(f"{path} {what}; an .npz data set holds {', '.join(ARRAYS)} and optionally classes")
    _check_images(path, arrays)
    classes = _class_names(path, arrays, _check_labels(path, arrays))
    if len(classes) < 2:
        raise KdlabError(f"{path}: needs at least two classes, not {len(classes)}")
    x_train, x_test = channel_major(arrays["x_train"]), channel_major(arrays["x_test"])
    image_shape = tuple(int(d) for d in x_train.shape[1:])
    train = scaled(x_train)
    var, avg = torch.var_mean(train.view(len(train), image_shape[0], -1), dim=(0, 2), correction=0)
    mean, std = tuple(avg.tolist()), tuple(var.sqrt().tolist())
    if min(std) == 0:
        raise KdlabError(f"{path}: the training images are constant in a channel (standard deviation 0)")
    spec = DatasetSpec(
        name=str(path),
        folders=(),
        classes=classes,
        mean=mean,
        std=std,
        raw_sha256={HASH_KEY: digest},
        gz_md5={},
        mirrors=(),
        image_shape=image_shape,
        format=NPZ,
    )
    return Dataset(
        spec=spec,
        x_train=normalise(train, mean, std),
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64)),
        x_test=normalise(scaled(x_test), mean, std),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
        hashes={HASH_KEY: digest},
        folder=path.parent,
        image_shape=image_shape,
    )
