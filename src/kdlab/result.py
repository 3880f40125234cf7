"""What a protocol gives back: what it measured (`Measured`, its models' `Stage`s), its numbers
as data beside them (`Analysis`), the models it trained, and their rendering.

Running a protocol writes nothing but the model store; everything else is a step taken on the
result when asked: `table` and `overall` as pandas DataFrames, `findings`, `figures` (drawn on
first use), `save(out)` for exactly the files `kdlab run` writes. `per_seed_metrics` reads a
run's metrics back, one row per seed, for sweeps and trackers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdlab.io import atomic_write_json, atomic_write_text, claimed_settings, holding_claims, prepare_out

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from kdlab.training.store import TrainedModel


@dataclass
class Stage:
    """Models trained (or reused) together, and what that took in this run."""

    models: list[TrainedModel]
    seconds: float  # wall time of this run's stage (small when the models were reused)
    cpu_seconds: float  # CPU time of this process (all threads): robust to other jobs on the machine

    @property
    def reused(self) -> bool:
        return all(m.reused for m in self.models)

    @property
    def training_seconds(self) -> float:
        """Wall time of training, as recorded when the models were trained."""
        groups = {(tuple(m.record["group"]), m.record["group_wall_time_s"]) for m in self.models}
        return sum(wall for _, wall in groups)


@dataclass
class Measured:
    """What a protocol's `measure` gives back: its final settings and the models by column or
    row (protocols add their own measurements in a subclass)."""

    settings: Any
    models: dict[str, list[TrainedModel]]

    def trained(self) -> dict[str, list[TrainedModel]]:
        """The models results.json indexes: all of them, unless some are others changed."""
        return self.models


@dataclass
class Analysis:
    """The complete results (what results.json holds) beside the measurements they came from."""

    data: dict[str, Any]
    measured: Any


@dataclass
class Rendering:
    """A protocol's results rendered for people: text files, figures drawn on demand, the tables
    the command line prints, and the DataFrames of the Python API."""

    texts: dict[str, str]  # file name in the output folder -> content
    figures: dict[str, Callable[[], Figure]]  # figure name (its PNG under figures/) -> draws it
    printed: list[str]  # the tables printed after a run, in order
    frames: Callable[[], tuple[pd.DataFrame, pd.DataFrame]]  # (table, overall)


@dataclass
class Result:
    """The outcome of one protocol run.

    `data` is exactly what `results.json` holds (the table, per-seed numbers, comparisons,
    findings, config, data hashes, package versions); `models` maps each column or row of the
    protocol to its trained models (weights in `state`, config and history in `record`).
    """

    protocol: str
    data: dict[str, Any]
    models: dict[str, list[TrainedModel]]
    rendering: Rendering = field(repr=False)
    _frames: tuple[pd.DataFrame, pd.DataFrame] | None = field(default=None, init=False, repr=False)
    _figures: dict[str, Figure] | None = field(default=None, init=False, repr=False)

    def __repr__(self) -> str:
        return f"<kdlab Result of {self.protocol}: {len(self.findings)} findings; see .table, .findings>"

    @property
    def table(self) -> pd.DataFrame:
        """The protocol's main table (for mythical-digit: per-class test accuracy in %, rows per
        class and Avg, one column per model; with several seeds, the mean and the 95% CI
        half-width of each column)."""
        return self._dataframes()[0]

    @property
    def overall(self) -> pd.DataFrame:
        """The protocol's summary numbers (for mythical-digit: overall accuracy and test errors
        per column)."""
        return self._dataframes()[1]

    @property
    def findings(self) -> list[str]:
        """The findings of report.md, computed from the measured numbers."""
        return list(self.data["findings"])

    @property
    def figures(self) -> dict[str, Figure]:
        """Every figure of the run by name (as saved under figures/<name>.png)."""
        if self._figures is None:
            self._figures = {name: draw() for name, draw in self.rendering.figures.items()}
        return self._figures

    def _dataframes(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._frames is None:
            self._frames = self.rendering.frames()
        return self._frames

    def summary(self) -> str:
        """The tables and findings the command line prints."""
        lines = [*self.rendering.printed, *(f"- {line}" for line in self.findings)]
        return "\n".join(lines)

    @holding_claims()
    def save(self, out: str | Path) -> Path:
        """Write what `kdlab run` writes into `out`: the text files, figures/ and results.json.
        A folder holding another experiment's results is refused (nothing is overwritten)."""
        from kdlab.reporting.figures import save_figure

        out = Path(out)
        prepare_out(out, self.protocol, claimed_settings(self.data))
        for name, text in self.rendering.texts.items():
            atomic_write_text(out / name, text)
        for name, fig in self.figures.items():
            save_figure(fig, out / "figures" / f"{name}.png")
        atomic_write_json(out / "results.json", _relative_folders(self.data, out))
        return out

    def files(self) -> str:
        """The files `save` writes, for the line the command line prints."""
        return ", ".join(
            [*self.rendering.texts, "results.json", *(["figures/"] if self.rendering.figures else [])]
        )


def model_index(models: dict[str, list[TrainedModel]]) -> dict[str, list[dict]]:
    """Every trained model of a run by its name, as results.json lists them: seed, store folder,
    key, whether it was reused, its group's training time (trackers read each one's history
    from the record in its folder)."""
    index: dict[str, list[dict]] = {}
    for group in models.values():
        for m in group:
            index.setdefault(m.name, []).append(
                {
                    "seed": m.record["seed"],
                    "folder": str(m.folder),
                    "key": m.record["key"],
                    "reused": m.reused,
                    "group_wall_time_s": m.record["group_wall_time_s"],
                }
            )
    return index


def per_seed_metrics(result: dict) -> list[dict]:
    """One dict per student seed of a finished run's results (`data`, or its results.json): the
    seed and every metric (accuracies in %), as sweep tables and trackers read them. Each
    sweepable protocol's analysis computes its metrics (`data["metrics"]`: name -> one value per
    student seed) where it knows its columns and rows; nothing here rebuilds column names."""
    return [
        {"seed": seed, **{name: float(values[i]) for name, values in result["metrics"].items()}}
        for i, seed in enumerate(result["seeds"])
    ]


def _relative_folders(obj: Any, out: Path) -> Any:
    """A copy of `obj` with every model folder given relative to `out`, as the output folder
    records them (a store under `out` then moves with it)."""
    if isinstance(obj, dict):
        return {
            k: os.path.relpath(v, out) if k == "folder" and isinstance(v, str) else _relative_folders(v, out)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_relative_folders(v, out) for v in obj]
    return obj
