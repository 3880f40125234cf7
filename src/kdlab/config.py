"""Typed, documented configurations and the CLI options generated from them (no hand-written flags).

A configuration is a frozen dataclass whose fields carry their help text and their bounds.
`add_arguments` turns the fields into argparse options, `from_args` turns parsed options (over
values from an optional TOML file) back into the dataclass, and `check_fields`, called from
every settings dataclass's `__post_init__`, validates them: values from TOML, YAML and sweep
files arrive untyped, so the types are checked here too, and no float may be NaN or infinite.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdlab.errors import KdlabError

CHECKS = ("ge", "gt", "le", "lt", "choices", "min_len", "unique")


def option(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field with a default, the help text its CLI option shows, and the checks
    `check_fields` applies to it (to each element of a tuple): `ge`, `gt`, `le`, `lt` (bounds),
    `choices`, `min_len` (of a tuple) and `unique` (a tuple without repeats)."""
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple for sequence defaults")
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise TypeError(f"unknown check(s) {sorted(unknown)}")
    return field(default=default, metadata={"help": help, **checks})


def same_as(cls: type, name: str, default: Any = dataclasses.MISSING, note: str = "", help: str = "") -> Any:
    """The setting `name` of settings class `cls` (its help text and checks) for another
    protocol, with that protocol's default and an optional note on its help (or a help text of
    its own): a setting that protocols share is declared once, so its checks cannot be lost."""
    (original,) = (f for f in dataclasses.fields(cls) if f.name == name)
    metadata = dict(original.metadata)
    if help:
        metadata["help"] = help
    if note:
        metadata["help"] = f"{metadata['help']}; {note}"
    default = original.default if default is dataclasses.MISSING else default
    return field(default=default, metadata=metadata)


def cli_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}


def _typed(value: Any, tp: Any) -> tuple[bool, Any]:
    """(whether `value` is a `tp`, the value converted: int to float, str to Path)."""
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if tp is Path:
        return isinstance(value, (str, Path)), Path(value) if isinstance(value, (str, Path)) else value
    raise TypeError(f"no check for settings of type {tp}")


def _bounds_text(meta: dict) -> str:
    low = next(((k, meta[k]) for k in ("ge", "gt") if k in meta), None)
    high = next(((k, meta[k]) for k in ("le", "lt") if k in meta), None)
    if low and high:
        return f"in {'[' if low[0] == 'ge' else '('}{low[1]:g}, {high[1]:g}{']' if high[0] == 'le' else ')'}"
    op, bound = low or high  # type: ignore[misc]
    return f"{ {'ge': '>=', 'gt': '>', 'le': '<=', 'lt': '<'}[op] } {bound:g}"


def _in_bounds(value: float, meta: dict) -> bool:
    return (
        ("ge" not in meta or value >= meta["ge"])
        and ("gt" not in meta or value > meta["gt"])
        and ("le" not in meta or value <= meta["le"])
        and ("lt" not in meta or value < meta["lt"])
    )


def _check_value(flag: str, value: Any, tp: Any, meta: dict, what: str) -> Any:
    """One value (or one element of a tuple) checked against its type and its field's checks."""
    ok, value = _typed(value, tp)
    if not ok:
        raise KdlabError(f"{flag} must be {what}, not {value!r}")
    if tp is float and not math.isfinite(value):
        raise KdlabError(f"{flag} must be a finite number, not {value}")
    if tp in (int, float) and not _in_bounds(value, meta):
        raise KdlabError(f"{flag} must be {_bounds_text(meta)}, not {value:g}")
    if "choices" in meta and value not in meta["choices"]:
        raise KdlabError(f"{flag} must be one of {', '.join(map(str, meta['choices']))}, not {value!r}")
    return value


def check_fields(config: Any) -> None:
    """Check every field of a settings dataclass against its type and the checks declared on
    its `option`, converting in place where the value is meant (int to float, list to tuple,
    str to Path, a class index to its name); the first problem is a one-line `KdlabError`
    naming the setting as the CLI spells it. Cross-field checks stay with each class."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, meta, flag = getattr(config, f.name), f.metadata, cli_name(f.name)
        tp = _unwrap_optional(hints[f.name])
        if value is None and tp is not hints[f.name]:
            continue
        if typing.get_origin(tp) is tuple:
            element = typing.get_args(tp)[0]
            if isinstance(value, (str, int, float)):
                value = (value,)  # a single value where a list is expected
            what = f"a list of {_KINDS[element].split(' ', 1)[-1]}s"
            if not isinstance(value, (list, tuple)):
                raise KdlabError(f"{flag} must be {what}, not {value!r}")
            if element is str:  # class names may be given as indices
                value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
            value = tuple(_check_value(flag, v, element, meta, what) for v in value)
            if len(value) < meta.get("min_len", 0):
                raise KdlabError(f"{flag} needs at least {meta['min_len']} value(s)")
            if meta.get("unique") and len(set(value)) != len(value):
                raise KdlabError(f"{flag} must not repeat a value")
        else:
            value = _check_value(flag, value, tp, meta, _KINDS[tp])
        object.__setattr__(config, f.name, value)


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per field of dataclass `cls`, its type and help taken from the field."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _unwrap_optional(hints[f.name])
        default = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        help_text = f.metadata.get("help", "") + ("" if f.default is None else f" (default: {default})")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is tuple:
            kwargs["type"] = typing.get_args(tp)[0]
            kwargs["nargs"] = "+"
            kwargs["metavar"] = f.name.upper()
        else:
            kwargs["type"] = tp
            kwargs["metavar"] = f.name.upper()
        parser.add_argument(cli_name(f.name), **kwargs)


def from_args(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """Build `cls` from `base` values (e.g. a TOML file) overridden by options given on the CLI."""
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in (base or {}).items():
        if key.replace("-", "_") not in names:
            raise KdlabError(f"unknown setting {key!r} for {cls.__name__}")
        values[key.replace("-", "_")] = value
    for name in names:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    return cls(**values)  # its __post_init__ checks and converts the values


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise KdlabError(f"cannot read config file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise KdlabError(f"config file {path} is not valid TOML: {e}") from e


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (tuples as lists, paths as strings)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


@dataclass(frozen=True)
class RunOptions:
    """How to run, as opposed to what to compute: none of these change a result."""

    data_dir: Path | None = option(None, "root holding one folder per data set (mnist/, ...)")
    out: Path | None = option(None, "output folder (default: runs/<protocol>)")
    models_dir: Path | None = option(
        None, "store of trained models, shareable between runs and folders (default: <out>/models)"
    )
    fresh: bool = option(False, "retrain every model instead of reusing finished ones")
    quiet: bool = option(False, "no progress bars")
    device: str = option("auto", "cpu, cuda, or auto (cuda when present)")
    threads: int = option(0, "CPU threads for torch (0: one per available core)", ge=0)
    download: bool = option(True, "download missing data from the public mirrors")
    memory_mb: int = option(4096, "memory budget of one training group; more models train in turns", ge=1)
    config: Path | None = option(None, "TOML file of experiment settings; options given here win")
    tracker: str | None = option(
        None,
        "also log the run to tensorboard (<out>/tensorboard/) or mlflow (needs the tracking extra); "
        "a tracker that fails after the run exits with 3, the results saved",
        choices=("tensorboard", "mlflow"),
    )
    tracking_uri: str | None = option(
        None, "MLflow tracking URI (default: sqlite:///<out>/mlflow.db); only with --tracker mlflow"
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise KdlabError(f"--device must be cpu, cuda or auto, not {self.device!r}")
        if self.tracking_uri is not None and self.tracker != "mlflow":
            raise KdlabError("--tracking-uri needs --tracker mlflow")
