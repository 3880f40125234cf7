"""`kdlab data pack FOLDER OUT.npz`: a folder of images in class subfolders as an .npz data set.

Layout: `FOLDER/<class>/<image>` (then a stratified, seeded split: in every class, a
`test_fraction` of its images, rounded and at least one, chosen by a permutation drawn from
`seed`, go to the test split) or `FOLDER/train/<class>/...` with `FOLDER/test/<class>/...`
(the split as given). Class names are the subfolder names, sorted; files starting with a dot
are skipped. Every image is converted to one mode (grayscale when all are, else RGB) and, with
`size`, resized to it; without it, all images must have the same size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdlab.config import option
from kdlab.errors import KdlabError
from kdlab.io import atomic_write_bytes

GREY = {"1", "L", "LA", "I", "I;16", "F"}  # modes packed as one channel


@dataclass(frozen=True)
class PackOptions:
    """How `kdlab data pack` turns image folders into an .npz."""

    size: tuple[int, ...] = option((), "resize every image to W H pixels (default: all must be one size)")
    test_fraction: float = option(0.2, "share of each class's images in the test split, without train/test")
    seed: int = option(0, "seed of the split's permutation, without train/test")

    def __post_init__(self) -> None:
        if self.size and (len(self.size) != 2 or min(self.size) < 1):
            raise KdlabError(f"--size takes a width and a height >= 1, not {' '.join(map(str, self.size))}")
        if not 0.0 < self.test_fraction < 1.0:
            raise KdlabError(f"--test-fraction must be in (0, 1), not {self.test_fraction}")


def class_files(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files, both sorted."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = {
        d.name: sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith(".")) for d in classes
    }
    if len(files) < 2:
        raise KdlabError(f"{folder} needs at least two class subfolders, not {len(files)}")
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise KdlabError(f"class folder(s) {', '.join(empty)} in {folder} hold no image")
    return files


def read_images(paths: list[Path], size: tuple[int, ...]) -> np.ndarray:
    """The images as one uint8 array [N, H, W] (all grey) or [N, H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise KdlabError(f"cannot read image {path}: {e}") from None
    mode = "L" if all(i.mode in GREY for i in images) else "RGB"
    if size:
        images = [i.resize(tuple(size), Image.Resampling.BILINEAR) for i in images]
    first = images[0].size
    for path, image in zip(paths, images):
        if image.size != first:
            raise KdlabError(
                f"{path} is {image.size[0]}x{image.size[1]} but {paths[0]} is {first[0]}x{first[1]}: "
                "give --size W H to resize them all"
            )
    return np.stack([np.asarray(i.convert(mode), dtype=np.uint8) for i in images])


def split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean test mask: in every class, round(fraction * n) images (at least 1) chosen by a
    seeded permutation; a class of one image cannot be split."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            raise KdlabError(f"class {c} has {len(members)} image(s): a split needs at least 2")
        k = min(max(1, round(fraction * len(members))), len(members) - 1)
        test[rng.permutation(members)[:k]] = True
    return test


def pack(folder: Path, out: Path, opts: PackOptions) -> dict[str, int]:
    """Write the .npz of `folder` to `out` (atomically); the images per split."""
    if not folder.is_dir():
        raise KdlabError(f"image folder {folder} does not exist or is not a folder")
    if out.suffix != ".npz":
        raise KdlabError(f"the output file must end in .npz, not {out.name}")
    if out.exists():
        raise KdlabError(f"{out} exists; remove it or choose another name")
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        parts = {s: class_files(folder / s) for s in ("train", "test")}
        if list(parts["train"]) != list(parts["test"]):
            raise KdlabError(f"{folder}/train and {folder}/test must hold the same class folders")
    else:
        parts = {"all": class_files(folder)}
    classes = list(next(iter(parts.values())))
    paths = [p for files in parts.values() for name in classes for p in files[name]]
    x = read_images(paths, opts.size)
    y = np.concatenate(
        [np.full(len(files[name]), c) for files in parts.values() for c, name in enumerate(classes)]
    )
    if "all" in parts:
        test = split(y, opts.test_fraction, opts.seed)
    else:
        test = np.arange(len(y)) >= sum(len(f) for f in parts["train"].values())
    arrays = {
        "x_train": x[~test], "y_train": y[~test], "x_test": x[test], "y_test": y[test],
        "classes": np.array(classes, dtype=str),
    }  # fmt: skip
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(out, buffer.getvalue())
    return {"train": int((~test).sum()), "test": int(test.sum()), "classes": len(classes)}
