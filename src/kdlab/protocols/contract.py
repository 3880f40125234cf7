"""The contract every protocol keeps, and the one function that runs any of them.

A protocol is a declaration: its settings class, the per-seed metrics its analysis fills, and
three steps. `measure(lab, settings)` trains and evaluates through the Lab and returns its
measurements (a `Measured`); `analyse(measured)` is pure (statistics, comparisons, findings:
what results.json holds); `render(analysis)` gives the tables, figures and Markdown. `run`
does everything else once for all of them: the output folder, the Lab, the clock, the
provenance and the model index, and the check that the declared metrics are exactly those
filled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdlab.config import RunOptions, to_dict
from kdlab.errors import KdlabError
from kdlab.result import Analysis, Measured, Rendering, Result, model_index
from kdlab.settings.metric import Metric

if TYPE_CHECKING:
    from kdlab.protocols.common import Lab


@dataclass(frozen=True)
class Protocol:
    name: str
    help: str
    settings: type  # a frozen dataclass with `dataset` and `resolve(data)`
    measure: Callable[[Lab, Any], Measured]
    analyse: Callable[[Any], dict[str, Any]]
    render: Callable[[Analysis], Rendering]
    metrics: tuple[Metric, ...] = ()  # the first is a sweep file's default

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    def run(self, settings: Any, opts: RunOptions) -> Result:
        return run(self, settings, opts)


def open_run(name: str, settings: Any, opts: RunOptions) -> tuple[Lab, Any]:
    """The Lab opened, the settings made explicit for its data and checked, and the output
    folder claimed for them: all before anything trains."""
    from kdlab.protocols.common import open_lab

    lab = open_lab(opts, settings.dataset)
    settings = settings.resolve(lab.data)
    lab.claim(name, to_dict(settings))
    return lab, settings


def run(protocol: Protocol, settings: Any, opts: RunOptions) -> Result:
    """Run any protocol: measure, analyse, check the metrics, render (nothing is written but
    the model store: see `Result.save`)."""
    start = time.perf_counter()
    lab, settings = open_run(protocol.name, settings, opts)
    measured = protocol.measure(lab, settings)
    wall_time_s = time.perf_counter() - start
    data = {
        "protocol": protocol.name,
        **protocol.analyse(measured),
        "models": model_index(measured.trained()),
        "wall_time_s": wall_time_s,
        **lab.provenance,
    }
    check_metrics(protocol, data)
    return Result(protocol.name, data, measured.models, protocol.render(Analysis(data, measured)))


def check_metrics(protocol: Protocol, data: dict) -> None:
    """The analysis filled exactly the declared metrics, one value per seed: a protocol that
    forgets one or invents one fails here, not in a sweep table later."""
    declared, filled = set(protocol.metric_names), set(data.get("metrics", {}))
    if not declared and "metrics" not in data:
        return
    if declared != filled:
        missing, extra = ", ".join(sorted(declared - filled)), ", ".join(sorted(filled - declared))
        problems = [f"misses the metric(s) {missing}"] * bool(missing)
        problems += [f"fills undeclared metric(s) {extra}"] * bool(extra)
        raise KdlabError(f"protocol {protocol.name}: its analysis {'; '.join(problems)}")
    seeds = len(data["seeds"])
    short = [name for name, values in data["metrics"].items() if len(values) != seeds]
    if short:
        raise KdlabError(f"protocol {protocol.name}: metric(s) {', '.join(short)} need one value per seed")
