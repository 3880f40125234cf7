"""Experiments: each protocol is one module declaring its settings, metrics and its measure,
analyse and render steps on the contract (`kdlab.protocols.contract`); this registry gives the
one list of them (the CLI, the Python API and sweeps read it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdlab.protocols.contract import Protocol


def _protocols() -> dict[str, Protocol]:
    from kdlab.protocols import every_digit, hinton2015, mythical_digit, soft_regularizer

    return {
        p.name: p
        for p in (
            mythical_digit.PROTOCOL,
            every_digit.PROTOCOL,
            hinton2015.PROTOCOL,
            soft_regularizer.PROTOCOL,
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


def sweepable(name: str) -> Protocol:
    """The protocol called `name`, if sweeps support it (it declares metrics); else a one-line
    error."""
    from kdlab import KdlabError

    supported = [p for p in _protocols().values() if p.metrics]
    if name not in [p.name for p in supported]:
        raise KdlabError(
            f"sweeps support the protocol(s) {', '.join(p.name for p in supported)}, not {name!r}"
        )
    return get(name)
