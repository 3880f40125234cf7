"""A sweep declared as data: a base protocol, a grid of values per parameter, the metrics.

```toml
name = "t-alpha"                  # optional; default: the file name
protocol = "mythical-digit"
metrics = ["kd_omitted_after", "kd_omitted_before"]
[base]                            # settings of every point (any option of the protocol)
seeds = 2                         # or seed_list = [4, 5]
[grid]                            # every combination of these values is one point
temperature = [1, 2, 4, 8]
alpha = [0.5, 0.9]
[[points]]                        # optional explicit points, each combined with the grid
student_hidden = [30, 30]
[resources]                       # per trial; --cpus-per-trial / --gpus-per-trial win
cpus = 1
gpus = 0.25
```

Every point is validated by building the protocol's config dataclass, so an unknown
parameter or an invalid value is a one-line error before anything runs.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdlab import protocols
from kdlab.config import load_toml, to_dict
from kdlab.errors import KdlabError
from kdlab.io import stable_hash
from kdlab.sweep.options import RayOptions

DEFAULT_PROTOCOL = "mythical-digit"  # of a sweep or search file that names none
TOP_KEYS = {"name", "protocol", "metrics", "base", "grid", "points", "resources", "description"}
RESOURCES = {"cpus": "cpus_per_trial", "gpus": "gpus_per_trial"}


def load_file(path: Path) -> dict[str, Any]:
    """A TOML or YAML file as a dict (YAML needs PyYAML, which Ray installs)."""
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise KdlabError(f"reading {path} needs PyYAML: pip install pyyaml") from None
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as e:
            raise KdlabError(f"cannot read {path}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise KdlabError(f"{path} is not valid YAML: {e}") from e
    else:
        data = load_toml(path)
    if not isinstance(data, dict):
        raise KdlabError(f"{path} must hold a table of settings")
    return data


def make_config(cls: type, values: dict[str, Any]) -> Any:
    """The protocol's config from plain values, checked and converted by it."""
    names = {f.name for f in dataclasses.fields(cls)}
    converted = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in names:
            raise KdlabError(f"unknown parameter {key!r} for {cls.__name__}")
        converted[name] = value
    if str(converted.get("dataset", "")).endswith(".npz"):  # the workers may run in another folder
        converted["dataset"] = str(Path(converted["dataset"]).resolve())
    try:
        return cls(**converted)
    except TypeError as e:
        raise KdlabError(f"invalid settings for {cls.__name__}: {e}") from None


def point_id(config: Any) -> str:
    """Content address of a point: identical settings, identical id (and folder)."""
    return stable_hash(to_dict(config))[:12]


@dataclass(frozen=True)
class Point:
    id: str
    params: dict[str, Any]  # the swept values (the table's config columns)
    config: Any


@dataclass(frozen=True)
class SweepSpec:
    name: str
    protocol: str
    base: dict[str, Any]
    grid: dict[str, list]
    explicit: list[dict[str, Any]]
    metrics: tuple[str, ...]
    resources: dict[str, float] = dataclasses.field(default_factory=dict)  # RayOptions defaults

    @property
    def config_cls(self) -> type:
        return protocols.get(self.protocol).settings

    @property
    def swept(self) -> list[str]:
        """The parameters that vary, in the order they were declared."""
        names = list(self.grid)
        for point in self.explicit:
            names += [k for k in point if k not in names]
        return names

    def with_overrides(self, overrides: dict[str, Any]) -> SweepSpec:
        """The same sweep on another budget (e.g. `--epochs 1 --seeds 1`); a swept parameter
        cannot be overridden."""
        clash = sorted(set(overrides) & set(self.swept))
        if clash:
            raise KdlabError(f"cannot override swept parameter(s) {', '.join(clash)} from the command line")
        return dataclasses.replace(self, base={**self.base, **overrides})

    def points(self) -> list[Point]:
        """Every point, validated; duplicates (same settings) appear once."""
        combos = [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]
        seen, points = set(), []
        for extra in self.explicit or [{}]:
            for combo in combos:
                params = {**extra, **combo}
                config = make_config(self.config_cls, {**self.base, **params})
                pid = point_id(config)
                if pid not in seen:
                    seen.add(pid)
                    points.append(Point(pid, params, config))
        return points


def parse_resources(data: Any) -> dict[str, float]:
    """A file's `[resources]` (cpus, gpus per trial) as `RayOptions` field values (which
    `RayOptions` checks)."""
    if not isinstance(data, dict) or set(data) - set(RESOURCES):
        raise KdlabError(f"[resources] takes {' and '.join(RESOURCES)} per trial")
    given = {RESOURCES[k]: v for k, v in data.items()}
    checked = RayOptions(**given)
    return {name: getattr(checked, name) for name in given}


def parse_spec(data: dict[str, Any], default_name: str) -> SweepSpec:
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise KdlabError(f"unknown sweep key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TOP_KEYS))}")
    protocol = data.get("protocol", DEFAULT_PROTOCOL)
    names = protocols.sweepable(protocol).metric_names
    grid = data.get("grid", {})
    explicit = data.get("points", [])
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise KdlabError("[grid] must map each parameter to a non-empty list of values")
    if not isinstance(explicit, list) or not all(isinstance(p, dict) for p in explicit):
        raise KdlabError("[[points]] must be a list of tables of settings")
    metrics = data.get("metrics", [names[0]])
    metrics = [metrics] if isinstance(metrics, str) else metrics
    for metric in metrics:
        if metric not in names:
            raise KdlabError(f"unknown metric {metric!r}; choose from {', '.join(names)}")
    spec = SweepSpec(
        name=str(data.get("name", default_name)),
        protocol=protocol,
        base=dict(data.get("base", {})),
        grid=grid,
        explicit=explicit,
        metrics=tuple(metrics),
        resources=parse_resources(data.get("resources", {})),
    )
    spec.points()  # validate every point now, before anything runs
    return spec


def load_spec(path: Path) -> SweepSpec:
    return parse_spec(load_file(path), path.stem)
