"""The published studies as data (docs/studies.toml), and whether each one's outputs are current.

A study is one kdlab command whose outputs live in docs/<name>/. `kdlab reproduce` writes
docs/<name>/reproduce.json beside them: the command, a hash of it and of the files it reads
(sweep files), the defaults its protocol's settings start from, the kdlab and engine versions,
the data hashes its results.json files recorded, the machine, the wall time, and the hash of
every file it published. The outputs are current while all of these still hold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdlab.config import load_toml
from kdlab.errors import KdlabError
from kdlab.version import __version__

STAMP = "reproduce.json"
# the module-level tables of a settings module that hold defaults (not the choices or limits a
# setting is checked against): what `Study.defaults` watches beside the fields
DEFAULT_TABLES = ("BUDGETS", "WIDTHS", "DEFAULT_WIDTHS", "OMITTED", "KEPT")
KINDS = ("run", "sweep", "tune")
# what a command writes that the docs keep (models, points and logs stay in the work folder)
PUBLISH = {
    "run": ("*.md", "*.csv", "results.json", "kdlab-run.json", "figures/*.png"),
    "sweep": ("summary.md", "results.csv", "figures/*.png"),
    "tune": ("tune.md", "tune.json"),
}


@dataclass(frozen=True)
class Study:
    name: str  # also its output folder under docs/
    command: tuple[str, ...]  # kdlab's arguments, without --data-dir, --out, --models-dir
    minutes: float  # expected wall time
    page: str  # the docs page it feeds
    publish: tuple[str, ...]  # glob patterns of the files the docs keep

    @property
    def kind(self) -> str:
        return self.command[0]

    def shown(self) -> str:
        """The command as a reader would type it, writing into the docs."""
        return shlex.join(["kdlab", *self.command, "--out", f"docs/{self.name}"])

    def settings_sha256(self) -> str:
        """What the outputs depend on besides code and data: the arguments, the content of every
        file they name (a sweep file), and the files kept."""
        files = {
            a: hashlib.sha256(Path(a).read_bytes()).hexdigest() for a in self.command if Path(a).is_file()
        }
        blob = json.dumps({"command": self.command, "files": files, "publish": self.publish}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def protocol(self) -> str | None:
        """The protocol the study runs: a run's own, a sweep's or search's from its file (or
        the one such files default to)."""
        from kdlab.sweep.spec import DEFAULT_PROTOCOL

        if self.kind == "run":
            return self.command[1] if len(self.command) > 1 else None
        file = next((Path(a) for a in self.command[1:] if a.endswith(".toml") and Path(a).is_file()), None)
        name = load_toml(file).get("protocol", DEFAULT_PROTOCOL) if file is not None else None
        return name if isinstance(name, str) else None

    def defaults(self) -> dict[str, Any]:
        """The settings its protocol starts from where the command is silent: every field's
        default, and the tables of default values of the modules that declare them (budgets,
        widths), so that a changed default makes the published outputs stale (a newer kdlab
        version alone does not tell)."""
        from kdlab import protocols

        name = self.protocol()
        if name not in protocols.names():
            return {}
        cls = protocols.get(name).settings
        fields = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        tables = {}
        for module in dict.fromkeys(k.__module__ for k in cls.__mro__ if k.__module__.startswith("kdlab.")):
            for table in DEFAULT_TABLES:
                if table in vars(sys.modules[module]):
                    tables[f"{module}.{table}"] = vars(sys.modules[module])[table]
        return json.loads(json.dumps({"fields": fields, "tables": tables}, default=str))


def load_studies(path: Path) -> tuple[list[Study], dict[str, Any]]:
    """The studies of `path` in order, and the file's other tables (the README's generated
    tables read them); a malformed entry is a one-line error."""
    data = load_toml(path)
    studies = []
    for entry in data.pop("study", []):
        name = entry.get("name", "?")
        unknown = set(entry) - {"name", "command", "minutes", "page", "publish"}
        if unknown or not all(k in entry for k in ("name", "command", "minutes", "page")):
            raise KdlabError(
                f"{path}: study {name!r} needs name, command, minutes, page (and may set publish)"
            )
        command = tuple(shlex.split(entry["command"]))
        if not command or command[0] not in KINDS:
            raise KdlabError(f"{path}: study {name!r}: the command must start with {', '.join(KINDS)}")
        if {"--out", "--data-dir", "--models-dir"} & set(command):
            raise KdlabError(
                f"{path}: study {name!r}: reproduce sets --out, --data-dir and --models-dir itself"
            )
        publish = tuple(entry.get("publish", PUBLISH[command[0]]))
        studies.append(Study(name, command, float(entry["minutes"]), entry["page"], publish))
    names = [s.name for s in studies]
    if len(set(names)) != len(names):
        raise KdlabError(f"{path}: study names repeat")
    return studies, data


def select(studies: list[Study], name: str | None) -> list[Study]:
    """The study called `name`, or every study under it (`mythical-digit`: all its variants)."""
    if name is None:
        return studies
    chosen = [s for s in studies if s.name == name or s.name.startswith(name.rstrip("/") + "/")]
    if not chosen:
        raise KdlabError(f"no study {name!r}; studies are {', '.join(s.name for s in studies)}")
    return chosen


def read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None


def engine_version() -> int:
    from kdlab.protocols.common import ENGINE_VERSION

    return ENGINE_VERSION


def known_hashes(dataset: str) -> dict[str, str] | None:
    """The sha256 kdlab verifies a built-in data set's files against, if it knows them."""
    from kdlab.data.datasets import DATASETS

    spec = DATASETS.get(dataset)
    return dict(spec.raw_sha256) if spec is not None and spec.raw_sha256 else None


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measured_on(folder: Path) -> set[str]:
    """The device kinds (`cpu-avx512`, `cuda`, ...) the results under `folder` record: one seed
    trains other weights on another kind, so its numbers are current only there."""
    kinds = set()
    for path in folder.rglob("results.json"):
        device = json.loads(path.read_text()).get("device")
        if isinstance(device, str):
            kinds.add(device)
    return kinds


def this_device() -> str:
    """The device kind a study run here would record."""
    from kdlab.protocols.common import device_kind, device_of

    return device_kind(device_of("auto"))


def staleness(study: Study, docs: Path) -> str | None:
    """Why docs/<name>/ is not the current output of `study` (None: it is): the first reason
    found, as the progress line shows it."""
    folder = docs / study.name
    stamp = read_stamp(folder)
    if stamp is None:
        return "no output yet" if not folder.is_dir() else f"no {STAMP} (not written by kdlab reproduce)"
    if stamp.get("settings_sha256") != study.settings_sha256():
        return "its command, or a file it reads, changed"
    was, now = stamp.get("defaults"), study.defaults() if "defaults" in stamp else None
    if was != now:  # a stamp written before the defaults were recorded is not judged on them
        changed = sorted(
            k
            for part in ("fields", "tables")
            for k in {*was.get(part, {}), *now.get(part, {})}
            if was.get(part, {}).get(k) != now.get(part, {}).get(k)
        )
        return f"its protocol's defaults changed ({', '.join(k.rsplit('.', 1)[-1] for k in changed)})"
    if stamp.get("kdlab") != __version__:
        return f"kdlab {stamp.get('kdlab')} → {__version__}"
    if stamp.get("engine") != engine_version():
        return f"engine {stamp.get('engine')} → {engine_version()}"
    measured, here = measured_on(folder), this_device()
    if measured and here not in measured:
        return f"measured on {', '.join(sorted(measured))}, this machine runs {here}"
    for dataset, hashes in stamp.get("data_sha256", {}).items():
        known = known_hashes(dataset)
        if known is not None and hashes != known:
            return f"the {dataset} files it used are not the ones kdlab verifies"
    for name, digest in stamp.get("files", {}).items():
        path = folder / name
        if not path.is_file() or file_sha256(path) != digest:
            return f"{name} is missing or was changed since the run"
    return None
