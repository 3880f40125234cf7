"""Experiments: the one list of them, one line per protocol (the CLI, the Python API and sweeps
read it).

Each protocol is declared on the contract (`kdlab.protocols.contract`): a module with its
measure, analyse and render steps, ending in `PROTOCOL = Protocol(...)`. What the command line
reads of it (name, help, settings, metrics) is its declaration in `kdlab.settings`, which needs
no torch; so a line here names both, and the protocol's own module, which needs torch, is
imported only when it runs. A `Protocol` may also stand here itself (the tests' tiny one).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kdlab.errors import KdlabError

if TYPE_CHECKING:
    from kdlab.config import RunOptions
    from kdlab.protocols.contract import Protocol
    from kdlab.result import Result
    from kdlab.settings.metric import Metric


@dataclass(frozen=True)
class Lazy:
    """A registry line: a protocol known by its declaration (what the command line reads) until
    it runs, when `module` is imported for its PROTOCOL."""

    name: str
    help: str
    settings: type
    metrics: tuple[Metric, ...]
    module: str

    @classmethod
    def of(cls, declaration: ModuleType, module: str) -> Lazy:
        """The line of a `kdlab.settings` module with NAME, HELP, SETTINGS and, if sweeps take
        the protocol, METRICS, and of the protocol's own module."""
        d = declaration
        return cls(d.NAME, d.HELP, d.SETTINGS, getattr(d, "METRICS", ()), module)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    @property
    def protocol(self) -> Protocol:
        """The protocol itself, its module imported now."""
        return import_module(self.module).PROTOCOL

    def run(self, settings: Any, opts: RunOptions) -> Result:
        return self.protocol.run(settings, opts)


def _protocols() -> dict[str, Protocol | Lazy]:
    from kdlab.settings import ensemble, every_digit, hinton2015, mythical_digit, soft_regularizer

    return {
        p.name: p
        for p in (
            Lazy.of(mythical_digit, "kdlab.protocols.mythical_digit"),
            Lazy.of(every_digit, "kdlab.protocols.every_digit"),
            Lazy.of(hinton2015, "kdlab.protocols.hinton2015"),
            Lazy.of(soft_regularizer, "kdlab.protocols.soft_regularizer"),
            Lazy.of(ensemble, "kdlab.protocols.ensemble"),
        )
    }


def get(name: str) -> Protocol | Lazy:
    """The protocol called `name`; an unknown name is a one-line error."""
    protocols = _protocols()
    if name not in protocols:
        raise KdlabError(f"unknown protocol {name!r}; choose from {', '.join(protocols)}")
    return protocols[name]


def names() -> list[str]:
    return list(_protocols())


def sweepable(name: str) -> Protocol | Lazy:
    """The protocol called `name`, if sweeps support it (it declares metrics); else a one-line
    error."""
    supported = [p for p in _protocols().values() if p.metrics]
    if name not in [p.name for p in supported]:
        raise KdlabError(
            f"sweeps support the protocol(s) {', '.join(p.name for p in supported)}, not {name!r}"
        )
    return get(name)
