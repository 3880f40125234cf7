"""Figures as matplotlib `Figure` objects, drawn without pyplot's global state (so they work in a
script, in a notebook and in a Ray worker alike), and written as PNG atomically."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kdlab.io import atomic_write_bytes


def subplots(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, squeeze: bool = True):
    """A new figure and its axes, owned by no window manager (nothing to close)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_figure(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def learning_curves(histories: dict[str, list[list[dict]]], monitors: dict[str, str]) -> Figure:
    """Accuracy (top) and loss (bottom) per epoch, training vs validation, one column per model;
    one line per seed."""
    names = list(histories)
    fig, axes = subplots((3.6 * len(names), 6.4), 2, len(names), squeeze=False)
    for j, name in enumerate(names):
        for i, (metric, label) in enumerate((("acc", "accuracy (%)"), ("loss", "loss"))):
            ax = axes[i][j]
            scale = 100.0 if metric == "acc" else 1.0
            for s, hist in enumerate(histories[name]):
                epochs = [h["epoch"] for h in hist]
                first = s == 0
                ax.plot(
                    epochs,
                    [scale * h[f"train_{metric}"] for h in hist],
                    "o-",
                    ms=3,
                    color="C0",
                    alpha=0.8,
                    label="training (running, with dropout)" if first else None,
                )
                ax.plot(
                    epochs,
                    [scale * h[f"val_{metric}"] for h in hist],
                    "s-",
                    ms=3,
                    color="C1",
                    alpha=0.8,
                    label="validation" if first else None,
                )
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(f"{name}\n(validation: {monitors[name]})", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        "Learning curves: training loss is each model's own objective, validation loss is "
        "cross-entropy; one line per seed",
        fontsize=9,
    )
    return fig


def per_class_bars(means: dict, ci95: dict, columns: list[str], classes: tuple[str, ...]) -> Figure:
    """Grouped bars: per-class test accuracy of every column (error bars: 95% CI over seeds)."""
    fig, ax = subplots((13, 4.5))
    width = 0.8 / len(columns)
    for j, col in enumerate(columns):
        xs = [c + (j - (len(columns) - 1) / 2) * width for c in range(len(classes))]
        errors = [ci95[col][str(c)] or 0.0 for c in range(len(classes))]
        ax.bar(
            xs,
            [float("nan") if means[col][str(c)] is None else means[col][str(c)] for c in range(len(classes))],
            width,
            label=col,
            yerr=errors if any(errors) else None,
            capsize=1.5,
        )
    ax.set_xticks(range(len(classes)), classes)
    ax.set_xlabel("class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=len(columns), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def bias_sweep(curves: dict[str, dict], marks: dict[str, dict[str, float]], omit_label: str) -> Figure:
    """Accuracy on the omitted classes and overall vs the bias shift, one panel per student,
    with the shift each calibration strategy chose (mean over seeds) marked."""
    fig, axes = subplots((6 * len(curves), 4.2), 1, len(curves), squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items()):
        ax.plot(curve["shift"], curve["omitted"], color="C3", label=f"accuracy on {omit_label}")
        ax.plot(curve["shift"], curve["overall"], color="C0", label="overall accuracy")
        for i, (strategy, shift) in enumerate(marks[name].items()):
            ax.axvline(
                shift, color=f"C{i + 4}", linestyle="--", linewidth=1, label=f"{strategy}: {shift:+.2f}"
            )
        ax.set_title(name)
        ax.set_xlabel("shift added to the omitted classes' output bias")
        ax.set_ylabel("test accuracy (%), mean over seeds")
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return fig


def omitted_class_bars(rows: list[dict], strategy: str) -> Figure:
    """Per omitted class: accuracy on it for Norm and KD, before and after calibration."""
    fig, ax = subplots((12, 4.5))
    bars = [
        ("Norm", "before", "Norm before"),
        ("KD", "before", "KD before"),
        ("Norm", "after", f"Norm after ({strategy})"),
        ("KD", "after", f"KD after ({strategy})"),
    ]
    width = 0.8 / len(bars)
    for j, (student, when, label) in enumerate(bars):
        xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(rows))]
        stats = [row["summary"][strategy][when][student] for row in rows]
        errors = [hw or 0.0 for _, hw in stats]
        ax.bar(xs, [m for m, _ in stats], width, label=label, yerr=errors if any(errors) else None, capsize=2)
    ax.set_xticks(range(len(rows)), [row["class"] for row in rows])
    ax.set_xlabel("omitted class")
    ax.set_ylabel("test accuracy on the omitted class (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=4, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def temperature_sweep(sweep: dict[str, dict]) -> Figure:
    """Test errors against the distillation temperature, one panel per student width, with the
    same width trained on hard labels as a dashed line; over several seeds, the mean with a band
    from the seeds' min to max."""
    fig, axes = subplots((5.2 * len(sweep), 4), 1, len(sweep), squeeze=False)
    for ax, (width, entry) in zip(axes[0], sweep.items()):
        seeds = len(entry["seeds"])
        label = "distilled" if seeds == 1 else f"distilled, mean of {seeds} seeds (band: min–max)"
        ax.plot(entry["temperature"], entry["errors"], "o-", color="C0", label=label)
        if seeds > 1:
            low, high = ([f(v) for v in entry["per_seed"]] for f in (min, max))
            ax.fill_between(entry["temperature"], low, high, color="C0", alpha=0.2)
        if entry["hard"] is not None:
            ax.axhline(entry["hard"], color="C3", linestyle="--", label="hard labels")
            if seeds > 1:
                hard = entry["hard_per_seed"]
                ax.axhspan(min(hard), max(hard), color="C3", alpha=0.1)
        ax.set_xscale("log")
        ax.set_xticks(entry["temperature"], [f"{t:g}" for t in entry["temperature"]])
        ax.minorticks_off()
        ax.set_title(f"784-{width}-{width}-10 students")
        ax.set_xlabel("temperature T")
        ax.set_ylabel("test errors")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def accuracy_by_fraction(rows: list[dict], labels: dict[str, str]) -> Figure:
    """Test accuracy against the fraction of training images (log axis), one line per method
    with its 95% CI band over seeds."""
    fig, ax = subplots((6.4, 4.4))
    xs = [r["fraction"] for r in rows]
    for i, (method, label) in enumerate(labels.items()):
        stats = [r["summary"][method]["accuracy"] for r in rows]
        means = [m for m, _ in stats]
        ax.plot(xs, means, "o-", ms=4, color=f"C{i}", label=label)
        if all(hw is not None for _, hw in stats):
            ax.fill_between(
                xs, [m - hw for m, hw in stats], [m + hw for m, hw in stats], color=f"C{i}", alpha=0.2
            )
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("training images the student sees (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def validation_curves(histories: dict[str, list[list[dict]]], fraction: float) -> Figure:
    """Validation loss and accuracy per epoch of the hard-label and soft-target students at one
    fraction, one line per seed: where the hard-label loss turns up, early stopping stops."""
    fig, axes = subplots((10, 4), 1, 2)
    for i, (method, label) in enumerate((("hard", "hard labels"), ("soft", "soft targets"))):
        for s, hist in enumerate(histories[method]):
            epochs = [h["epoch"] for h in hist]
            axes[0].plot(
                epochs,
                [h["val_loss"] for h in hist],
                color=f"C{i}",
                alpha=0.8,
                label=label if s == 0 else None,
            )
            axes[1].plot(
                epochs,
                [100 * h["val_acc"] for h in hist],
                color=f"C{i}",
                alpha=0.8,
                label=label if s == 0 else None,
            )
    for ax, name in zip(axes, ("validation loss (cross-entropy)", "validation accuracy (%)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Students on {fraction:g}% of the training images; one line per seed", fontsize=9)
    return fig


def accuracy_by_ensemble_size(result: dict, students: dict[str, str]) -> Figure:
    """Test accuracy against the number of members (mean over disjoint ensembles of each size),
    by both means, with the students as horizontal lines (their mean over seeds)."""
    fig, ax = subplots((6.4, 4.4))
    sizes = [e["size"] for e in result["ensembles"]]
    for i, mean in enumerate(("arithmetic", "geometric")):
        means = [e[f"{mean}_summary"][0] for e in result["ensembles"]]
        ax.plot(sizes, means, "o-", ms=4, color=f"C{i}", label=f"ensemble, {mean} mean")
    for i, (key, label) in enumerate(students.items()):
        ax.axhline(
            result["students"][key]["summary"][0], color=f"C{i + 2}", ls="--", label=f"student, {label}"
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("members in the ensemble")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
