"""Experiments: each protocol declares its models, trains them through the engine, and hands its
measured numbers to reporting. `PROTOCOLS` is the one list of them (the CLI, the Python API and
sweeps read it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Protocol:
    name: str
    config: type  # its settings dataclass
    run: Callable[..., Any]  # run(config, opts: RunOptions) -> kdlab.result.Result
    help: str


def _protocols() -> dict[str, Protocol]:
    from kdlab.protocols import every_digit, hinton2015, mythical_digit

    return {
        p.name: p
        for p in (
            Protocol(
                mythical_digit.NAME,
                mythical_digit.MythicalDigitConfig,
                mythical_digit.run,
                "teacher and four students, one class left out of the transfer set",
            ),
            Protocol(
                every_digit.NAME,
                every_digit.EveryDigitConfig,
                every_digit.run,
                "the mythical-class experiment for each class in turn, calibrated",
            ),
            Protocol(
                hinton2015.NAME,
                hinton2015.Hinton2015Config,
                hinton2015.run,
                "the paper's own MNIST numbers, side by side with kdlab's",
            ),
        )
    }


def get(name: str) -> Protocol:
    """The protocol called `name`; an unknown name is a one-line error."""
    from kdlab import KdlabError

    protocols = _protocols()
    if name not in protocols:
        raise KdlabError(f"unknown protocol {name!r}; choose from {', '.join(protocols)}")
    return protocols[name]


def names() -> list[str]:
    return list(_protocols())
