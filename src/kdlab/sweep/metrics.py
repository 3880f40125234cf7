"""Per-seed metrics of a run, read from its results (results.json).

Mythical-digit:
"omitted" metrics are the accuracy on the omitted classes' test images (with several
omitted classes: the mean of their per-class accuracies); "after" means after the bias
calibration the run's first `calibration` strategy chose.

Soft-regularizer: read at the run's smallest fraction (a sweep sets `fractions = [3]` to pick
one). "val" metrics are on the validation split, the others on the test set; `early` is the
hard-label student at its epoch of lowest validation loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kdlab.data import DATASETS

Metric = Callable[[dict, str, str], list[float]]


def _overall(col: str) -> Metric:
    return lambda r, norm_no, kd_no: r["overall"][col]["per_seed_accuracy"]


def _before(kd: bool) -> Metric:
    def metric(r: dict, norm_no: str, kd_no: str) -> list[float]:
        per_class = r["per_seed"][kd_no if kd else norm_no]  # keyed by class index
        classes = DATASETS[r["config"]["dataset"]].classes
        return np.mean([per_class[str(classes.index(c))] for c in r["omitted_classes"]], axis=0).tolist()

    return metric


def _calibrated(kd: bool, key: str) -> Metric:
    def metric(r: dict, norm_no: str, kd_no: str) -> list[float]:
        strategy = r["config"]["calibration"][0]
        return r["calibration"][kd_no if kd else norm_no][strategy][key]

    return metric


def _no_overall(kd: bool) -> Metric:
    return lambda r, norm_no, kd_no: r["overall"][kd_no if kd else norm_no]["per_seed_accuracy"]


METRICS: dict[str, Metric] = {
    "teacher_accuracy": lambda r, *_: r["overall"]["Teacher"]["per_seed_accuracy"] * len(r["seeds"]),
    "norm_accuracy": _overall("Norm"),
    "kd_accuracy": _overall("KD"),
    "norm_no_accuracy": _no_overall(False),
    "kd_no_accuracy": _no_overall(True),
    "norm_omitted_before": _before(False),
    "kd_omitted_before": _before(True),
    "norm_omitted_after": _calibrated(False, "omitted"),
    "kd_omitted_after": _calibrated(True, "omitted"),
    "norm_accuracy_after": _calibrated(False, "overall"),
    "kd_accuracy_after": _calibrated(True, "overall"),
    "kd_shift": _calibrated(True, "shift"),
}


def _smallest(method: str, key: str) -> Callable[[dict], list[float]]:
    def metric(r: dict) -> list[float]:
        return min(r["rows"], key=lambda row: row["fraction"])["methods"][method][key]

    return metric


SOFT_REGULARIZER_METRICS: dict[str, Callable[[dict], list[float]]] = {
    f"{method}_{prefix}{key}": _smallest(method, f"{prefix}{key}")
    for prefix in ("val_", "")
    for method in ("soft", "early", "hard")
    for key in ("accuracy", "loss" if prefix else "errors")
}


def metric_names(protocol: str) -> tuple[str, ...]:
    return tuple(SOFT_REGULARIZER_METRICS if protocol == "soft-regularizer" else METRICS)


def per_seed_metrics(result: dict) -> list[dict]:
    """One dict per student seed: the seed and every metric (accuracies in %)."""
    if result["protocol"] == "soft-regularizer":
        values = {name: metric(result) for name, metric in SOFT_REGULARIZER_METRICS.items()}
    else:
        tag = "No" + ",".join(result["omitted_classes"])
        norm_no, kd_no = f"Norm {tag}", f"KD {tag}"
        values = {name: metric(result, norm_no, kd_no) for name, metric in METRICS.items()}
    return [
        {"seed": seed, **{k: float(v[i]) for k, v in values.items()}}
        for i, seed in enumerate(result["seeds"])
    ]
