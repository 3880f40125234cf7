"""Typed, documented configurations and the CLI options generated from them (no hand-written flags).

A configuration is a frozen dataclass whose fields carry their help text. `add_arguments`
turns the fields into argparse options, `from_args` turns parsed options (over values from
an optional TOML file) back into the dataclass, whose `__post_init__` validates them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdlab import KdlabError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def option(default: Any, help: str) -> Any:
    """A dataclass field with a default and the help text its CLI option shows."""
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple for sequence defaults")
    return field(default=default, metadata={"help": help})


def cli_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


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
    hints = typing.get_type_hints(cls)
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
    for name, value in values.items():
        tp = _unwrap_optional(hints[name])
        if typing.get_origin(tp) is tuple:
            values[name] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        elif tp is Path and value is not None:
            values[name] = Path(value)
    return cls(**values)


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
    threads: int = option(0, "CPU threads for torch (0: one per available core)")
    download: bool = option(True, "download missing data from the public mirrors")
    memory_mb: int = option(4096, "memory budget of one training group; more models train in turns")
    config: Path | None = option(None, "TOML file of experiment settings; options given here win")
    tracker: str | None = option(
        None, "also log the run to tensorboard (<out>/tensorboard/) or mlflow (needs the tracking extra)"
    )
    tracking_uri: str | None = option(
        None, "MLflow tracking URI (default: sqlite:///<out>/mlflow.db); only with --tracker mlflow"
    )

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise KdlabError(f"--device must be cpu, cuda or auto, not {self.device!r}")
        if self.memory_mb < 1:
            raise KdlabError(f"--memory-mb must be >= 1, not {self.memory_mb}")
        if self.threads < 0:
            raise KdlabError(f"--threads must be >= 0, not {self.threads}")
        if self.tracker not in (None, "tensorboard", "mlflow"):
            raise KdlabError(f"--tracker must be tensorboard or mlflow, not {self.tracker!r}")
        if self.tracking_uri is not None and self.tracker != "mlflow":
            raise KdlabError("--tracking-uri needs --tracker mlflow")
