"""Experiments: each protocol declares its models, trains them through the engine, and hands its
measured numbers to reporting. `get` and `names` give the one list of them (the CLI, the Python
API and sweeps read it). The list holds each protocol's declaration (`kdlab.settings`); its
module, which needs torch, is imported only when it runs, so the command line answers at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kdlab.errors import KdlabError


@dataclass(frozen=True)
class Protocol:
    name: str
    config: type  # its settings dataclass
    help: str
    # Sweepable protocols: the per-seed metrics their results hold (`data["metrics"]`), the
    # first the default of a sweep file, and the teacher's settings (a StudyConfig) of a config,
    # so that a sweep trains each distinct teacher once
    metrics: tuple[str, ...] = ()
    teacher: Callable[[Any], Any] | None = None

    def run(self, config: Any, opts: Any) -> Any:
        """run(config, opts: RunOptions) -> kdlab.result.Result, its module imported now."""
        from kdlab.protocols import every_digit, hinton2015, mythical_digit, soft_regularizer

        modules = (mythical_digit, every_digit, hinton2015, soft_regularizer)
        return {m.NAME: m.run for m in modules}[self.name](config, opts)


def _protocols() -> dict[str, Protocol]:
    from kdlab.settings import every_digit, hinton2015, mythical_digit, soft_regularizer

    return {
        p.name: p
        for p in (
            Protocol(
                mythical_digit.NAME,
                mythical_digit.MythicalDigitConfig,
                "teacher and four students, one class left out of the transfer set",
                mythical_digit.METRICS,
                mythical_digit.teacher_settings,
            ),
            Protocol(
                every_digit.NAME,
                every_digit.EveryDigitConfig,
                "the mythical-class experiment for each class in turn, calibrated",
            ),
            Protocol(
                hinton2015.NAME,
                hinton2015.Hinton2015Config,
                "the paper's own MNIST numbers, side by side with kdlab's",
            ),
            Protocol(
                soft_regularizer.NAME,
                soft_regularizer.SoftRegularizerConfig,
                "students on a fraction of the data: hard labels, early stopping, soft targets",
                soft_regularizer.METRICS,
                soft_regularizer.teacher_settings,
            ),
        )
    }


def get(name: str) -> Protocol:
    """The protocol called `name`; an unknown name is a one-line error."""
    protocols = _protocols()
    if name not in protocols:
        raise KdlabError(f"unknown protocol {name!r}; choose from {', '.join(protocols)}")
    return protocols[name]


def names() -> list[str]:
    return list(_protocols())


def sweepable(name: str) -> Protocol:
    """The protocol called `name`, if sweeps support it; else a one-line error."""
    supported = [p for p in _protocols().values() if p.metrics]
    if name not in [p.name for p in supported]:
        raise KdlabError(
            f"sweeps support the protocol(s) {', '.join(p.name for p in supported)}, not {name!r}"
        )
    return get(name)
