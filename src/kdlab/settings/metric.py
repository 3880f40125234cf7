"""A metric a protocol declares: a per-seed number its results offer to sweeps, searches and
trackers, with its unit and its direction (torch-free, so that settings modules declare theirs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A per-seed number a protocol's results offer to sweeps, searches and trackers."""

    name: str
    unit: str
    higher_is_better: bool | None  # None: no better direction (e.g. a chosen bias shift)
    help: str
