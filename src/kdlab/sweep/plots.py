"""Figures of a sweep: per metric, a heat map (and one line per row) for a 2-D grid, a line
with its 95% CI band for a 1-D sweep (mean over seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdlab.reporting.figures import save_figure, subplots
from kdlab.reporting.stats import mean_ci
from kdlab.sweep.table import cell_text


def _axis(records: list[dict], name: str) -> list:
    """The distinct values of a swept parameter, in the order the points came."""
    values = []
    for record in records:
        value = record["config"][name]
        if value not in values:
            values.append(value)
    return values


def _stats(records: list[dict], metric: str, where: dict) -> tuple[float, float | None] | None:
    values = [
        row[metric]
        for record in records
        if all(record["config"][k] == v for k, v in where.items())
        for row in record["rows"]
    ]
    return mean_ci(values) if values else None


def heat_map(records: list[dict], rows: str, cols: str, metric: str, path: Path) -> None:
    ys, xs = _axis(records, rows), _axis(records, cols)
    grid = np.full((len(ys), len(xs)), np.nan)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            stats = _stats(records, metric, {rows: y, cols: x})
            if stats is not None:
                grid[i, j] = stats[0]
    fig, ax = subplots((1.1 * len(xs) + 2.5, 0.6 * len(ys) + 2))
    image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            shade = "white" if value < np.nanmean(grid) else "black"
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8, color=shade)
    ax.set_xticks(range(len(xs)), [cell_text(x) for x in xs])
    ax.set_yticks(range(len(ys)), [cell_text(y) for y in ys])
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    seeds = len(records[0]["rows"])
    ax.set_title(f"{metric} (mean over {seeds} seed(s))", fontsize=9)
    fig.colorbar(image, ax=ax)
    save_figure(fig, path)


def line_plot(records: list[dict], param: str, metric: str, path: Path, series: str | None = None) -> None:
    """`metric` against `param`, one line (with its CI band) per value of `series`."""
    xs = _axis(records, param)
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    positions = xs if numeric else list(range(len(xs)))
    fig, ax = subplots((5.5, 3.6))
    for k, group in enumerate(_axis(records, series) if series else [None]):
        where = {series: group} if series else {}
        stats = [_stats(records, metric, {**where, param: x}) for x in xs]
        keep = [i for i, st in enumerate(stats) if st is not None]
        means = np.array([stats[i][0] for i in keep])
        half = np.array([stats[i][1] or 0.0 for i in keep])
        at = [positions[i] for i in keep]
        label = f"{series} = {cell_text(group)}" if series else "mean over seeds"
        ax.plot(at, means, "o-", color=f"C{k}", label=label)
        ax.fill_between(at, means - half, means + half, color=f"C{k}", alpha=0.2)
    if not numeric:
        ax.set_xticks(positions, [cell_text(x) for x in xs])
    elif min(xs) > 0 and max(xs) / min(xs) >= 8:  # e.g. temperatures 1 to 16
        ax.set_xscale("log")
        ax.set_xticks(xs, [cell_text(x) for x in xs])
        ax.minorticks_off()
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title("mean over seeds, band: 95% CI", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def sweep_figures(
    records: list[dict], swept: list[str], metrics: tuple[str, ...], folder: Path
) -> list[Path]:
    """The figures a sweep of one or two parameters calls for; none for more."""
    paths = []
    for metric in metrics:
        if len(swept) == 2:
            paths += [folder / f"{metric}.png", folder / f"{metric}_lines.png"]
            heat_map(records, swept[0], swept[1], metric, paths[-2])
            line_plot(records, swept[0], metric, paths[-1], series=swept[1])
        elif len(swept) == 1:
            paths.append(folder / f"{metric}.png")
            line_plot(records, swept[0], metric, paths[-1])
    return paths
