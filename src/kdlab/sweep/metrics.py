"""Per-seed metrics of a finished run, for sweep tables: read from the run's own results.

Each sweepable protocol's analysis computes its metrics (`data["metrics"]`: name -> one value
per student seed) where it knows its columns and rows; nothing here rebuilds column names.
The metrics each protocol offers are declared in its `Protocol` (`Metric` objects: name, unit,
direction), which the core checks its analysis against.
"""

from __future__ import annotations


def per_seed_metrics(result: dict) -> list[dict]:
    """One dict per student seed: the seed and every metric (accuracies in %)."""
    return [
        {"seed": seed, **{name: float(values[i]) for name, values in result["metrics"].items()}}
        for i, seed in enumerate(result["seeds"])
    ]
