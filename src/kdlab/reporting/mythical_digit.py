"""The mythical-digit results: analysis (metrics, paired comparisons, findings) from the evaluated
models, then rendering (tables, figures, report) from the analysis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdlab.reporting.figures import bias_sweep, learning_curves, per_class_bars
from kdlab.reporting.findings import class_phrase, detect_overfitting
from kdlab.reporting.frames import ci_frame
from kdlab.reporting.stats import mean_ci, paired
from kdlab.reporting.table import (
    cell,
    markdown,
    per_seed_csv,
    per_seed_table,
    provenance_lines,
    summarise,
    table_csv,
    table_markdown,
)
from kdlab.result import Rendering

if TYPE_CHECKING:
    from kdlab.result import Analysis, Measured


@dataclass(frozen=True)
class Columns:
    """The seven columns of the table, by role: the omitted classes' tag names the last four."""

    tag: str  # e.g. "No3"
    teacher: str = "Teacher"
    norm: str = "Norm"
    kd: str = "KD"

    @classmethod
    def of(cls, omit_names: list[str]) -> Columns:
        return cls("No" + ",".join(omit_names))

    @property
    def norm_no(self) -> str:
        return f"Norm {self.tag}"

    @property
    def kd_no(self) -> str:
        return f"KD {self.tag}"

    @property
    def norm_b(self) -> str:
        return f"Norm {self.tag}+B"

    @property
    def kd_b(self) -> str:
        return f"KD {self.tag}+B"

    @property
    def students(self) -> list[str]:
        """The trained students (the +B columns are two of them shifted)."""
        return [self.norm, self.kd, self.norm_no, self.kd_no]

    @property
    def all(self) -> list[str]:
        return [self.teacher, *self.students, self.norm_b, self.kd_b]


def _comparisons(cols: Columns, per_seed_metric: dict, omit_label: str) -> list[dict]:
    """The paired comparisons the protocol is about, each over the shared seeds."""
    overall, omitted = per_seed_metric["overall"], per_seed_metric["omitted"]
    pairs = [
        (cols.kd, cols.norm, "overall accuracy", overall),
        (cols.kd_no, cols.norm_no, f"accuracy on {omit_label}", omitted),
        (cols.kd_b, cols.norm_b, f"accuracy on {omit_label}", omitted),
        (cols.kd_b, cols.norm_b, "overall accuracy", overall),
        (cols.norm_b, cols.norm_no, f"accuracy on {omit_label}", omitted),
        (cols.kd_b, cols.kd_no, f"accuracy on {omit_label}", omitted),
    ]
    out = [
        {"a": a, "b": b, "metric": metric, **paired(values[a], values[b]).as_dict()}
        for a, b, metric, values in pairs
    ]
    gain_kd = [x - y for x, y in zip(omitted[cols.kd_b], omitted[cols.kd_no])]
    gain_norm = [x - y for x, y in zip(omitted[cols.norm_b], omitted[cols.norm_no])]
    out.append(
        {
            "a": f"{cols.kd_b} - {cols.kd_no}",
            "b": f"{cols.norm_b} - {cols.norm_no}",
            "metric": f"gain from the bias on {omit_label}",
            **paired(gain_kd, gain_norm).as_dict(),
        }
    )
    return out


def _phrase(c: dict) -> str:
    if c["ci95"] is None:
        return f"{c['mean_diff']:+.2f} points"
    return (
        f"{c['mean_diff']:+.2f} ± {c['ci95']:.2f} points over {c['n']} seeds "
        f"(95% CI; paired t-test p = {c['p_value']:.2g})"
    )


def _calibration_markdown(calibration: dict, omit_label: str) -> str:
    rows = []
    for col, strategies in calibration.items():
        for strategy, values in strategies.items():
            rows.append(
                [
                    col,
                    strategy,
                    cell(*mean_ci(values["shift"]), 2),
                    cell(*mean_ci(values["omitted"]), 1),
                    cell(*mean_ci(values["overall"]), 2),
                ]
            )
    return markdown(
        ["Student", "Calibration", "Shift", f"Accuracy on {omit_label} (%)", "Overall accuracy (%)"], rows
    )


def analyse(measured: Measured) -> dict:  # kdlab.protocols.mythical_digit.MythicalDigitMeasured
    """What results.json holds besides the run's record: the table and its per-seed values,
    overall numbers, the paired comparisons, calibration and findings."""
    config, cols, classes, omit = measured.settings, measured.columns, measured.classes, measured.omit
    evaluations, models, calibration = measured.evaluations, measured.models, measured.calibration
    test_counts, seeds, columns = measured.test_counts, config.student_seeds(), cols.all
    n_omit = sum(test_counts[c] for c in omit)
    omit_label = class_phrase([classes[c] for c in omit])
    per_seed = per_seed_table(
        columns, len(classes), {c: [e.per_class for e in evaluations[c]] for c in columns}
    )
    means, ci95 = summarise(per_seed)
    metric = {
        "overall": {c: [100 * e.accuracy for e in evaluations[c]] for c in columns},
        # accuracy on the omitted classes: pooled over their test images, as everywhere in kdlab
        "omitted": {
            c: [
                100 * sum(e.per_class[k] * test_counts[k] for k in omit if test_counts[k]) / n_omit
                for e in evaluations[c]
            ]
            for c in columns
        },
        "errors": {c: [e.errors for e in evaluations[c]] for c in columns},
    }
    overall = {
        c: {
            "accuracy": mean_ci(metric["overall"][c]),
            "errors": mean_ci(metric["errors"][c]),
            "per_seed_accuracy": metric["overall"][c],
            "per_seed_errors": metric["errors"][c],
            "per_seed_omitted_accuracy": metric["omitted"][c],
        }
        for c in columns
    }
    comparisons = _comparisons(cols, metric, omit_label)

    overfit = {
        name: [detect_overfitting(m.record["history"]) for m in models[name]] for name in cols.students
    }
    norm, kd, norm_no, kd_no, norm_b, kd_b = (
        cols.norm,
        cols.kd,
        cols.norm_no,
        cols.kd_no,
        cols.norm_b,
        cols.kd_b,
    )

    def m(col: str, key: str = "omitted") -> str:
        mean, hw = mean_ci(metric[key][col])
        return cell(mean, hw, 1 if key == "omitted" else 2) + "%"

    teacher_errors = evaluations[cols.teacher][0].errors
    first = config.calibration[0]
    if first == "fixed":
        how = f"{config.bias:+g} (fixed)"
    else:
        how = (
            "the shift the "
            + first
            + " calibration chose (Norm "
            + ", KD ".join(cell(*mean_ci(calibration[c][first]["shift"]), 2) for c in (norm_no, kd_no))
            + ")"
        )
    findings = [
        f"The teacher gets {m(cols.teacher, 'overall')} of the test set right ({teacher_errors} errors).",
        f"Distilled student vs hard-label student, trained on all data (overall accuracy "
        f"{m(kd, 'overall')} vs {m(norm, 'overall')}): {_phrase(comparisons[0])}.",
        f"With no example of {omit_label} in the transfer set, the students get {m(norm_no)} (Norm) and "
        f"{m(kd_no)} (KD) of its {n_omit} test images right; KD minus Norm: {_phrase(comparisons[1])}.",
        f"After raising the output bias of {omit_label} by {how}: {m(norm_b)} (Norm) and "
        f"{m(kd_b)} (KD); {kd_b} minus {norm_b}: {_phrase(comparisons[2])}.",
        f"The bias gains the KD student {_phrase(comparisons[5])} on {omit_label}, the Norm student "
        f"{_phrase(comparisons[4])}; the difference of the gains is {_phrase(comparisons[6])}.",
        f"Overall accuracy after the bias: {m(norm_b, 'overall')} (Norm) and {m(kd_b, 'overall')} (KD), "
        f"against {m(norm_no, 'overall')} and {m(kd_no, 'overall')} before.",
    ]
    for name, sentences in overfit.items():
        hits = [(s, text) for s, text in zip(seeds, sentences) if text]
        if hits:
            findings.append(
                f"{name}: overfitting detected in {len(hits)} of {len(seeds)} seed(s) — "
                f"seed {hits[0][0]}: {hits[0][1]}."
            )
        else:
            findings.append(
                f"{name}: no overfitting detected (validation loss never rose past its "
                "minimum while training loss fell)."
            )
    findings.append(
        f"Soft-target term {'scaled by T^2 (as in the paper)' if config.t2 else 'not scaled by T^2'}, "
        f"T = {config.temperature:g}, alpha = {config.alpha:g}; student seeds {seeds}, teacher seed "
        f"{config.seed}."
        + (
            " Single runs of the No-class students vary widely between seeds: run --seeds 5 or more "
            "before trusting a difference."
            if len(seeds) == 1
            else ""
        )
    )

    after = {col: calibration[col][first] for col in (norm_no, kd_no)}  # the first strategy's
    sweep_metrics = {
        "kd_omitted_after": after[kd_no]["omitted"],
        "teacher_accuracy": metric["overall"][cols.teacher] * len(seeds),
        "norm_accuracy": metric["overall"][norm],
        "kd_accuracy": metric["overall"][kd],
        "norm_no_accuracy": metric["overall"][norm_no],
        "kd_no_accuracy": metric["overall"][kd_no],
        "norm_omitted_before": metric["omitted"][norm_no],
        "kd_omitted_before": metric["omitted"][kd_no],
        "norm_omitted_after": after[norm_no]["omitted"],
        "norm_accuracy_after": after[norm_no]["overall"],
        "kd_accuracy_after": after[kd_no]["overall"],
        "kd_shift": after[kd_no]["shift"],
    }
    return {
        "table": means,
        "ci95": ci95,
        "per_seed": per_seed,
        "seeds": seeds,
        "overall": overall,
        "comparisons": comparisons,
        "calibration": calibration,
        "bias_curves": measured.bias_curves,
        "classes": list(classes),
        "omitted_classes": [classes[c] for c in omit],
        "overfitting": overfit,
        "findings": findings,
        "metrics": sweep_metrics,
    }


def render(analysis: Analysis) -> Rendering:
    """The tables, report and figures of an analysed run (nothing is written here)."""
    result, measured = analysis.data, analysis.measured
    config, classes, models, cols = measured.settings, measured.classes, measured.models, measured.columns
    columns = cols.all
    means, ci95, overall, calibration = (
        result["table"],
        result["ci95"],
        result["overall"],
        result["calibration"],
    )
    seeds, wall_time_s, findings = result["seeds"], result["wall_time_s"], result["findings"]
    omit_label = f"class {', '.join(result['omitted_classes'])}"
    md = table_markdown(means, ci95, columns, classes)
    overall_md = markdown(
        ["", *columns],
        [
            ["Overall accuracy (%)"] + [cell(*overall[c]["accuracy"], 2) for c in columns],
            ["Test errors"] + [cell(*overall[c]["errors"], 0) for c in columns],
        ],
    )
    histories = {name: [t.record["history"] for t in models[name]] for name in [cols.teacher, *cols.students]}
    monitors = {name: models[name][0].record["identity"]["monitor"] for name in histories}
    marks = {col: {st: mean_ci(v["shift"])[0] for st, v in calibration[col].items()} for col in calibration}
    calibration_md = _calibration_markdown(calibration, omit_label)
    seeds_of = {c: [t.record["seed"] for t in models[c]] for c in columns}
    model_info = result["models"]
    times = "; ".join(
        f"{name} {info[0]['group_wall_time_s']:.0f} s" + (" (reused)" if info[0]["reused"] else "")
        for name, info in model_info.items()
    )
    ci_note = (
        f" Cells: mean ± half-width of the 95% Student-t interval over {len(seeds)} seeds."
        if len(seeds) > 1
        else ""
    )
    report = "\n".join(
        [
            f"# Mythical {omit_label} ({config.dataset})",
            "",
            f"Per-class test accuracy (%); Avg is the mean of the per-class accuracies.{ci_note}",
            "",
            md,
            overall_md,
            "## Findings",
            "",
            *[f"- {line}" for line in findings],
            "",
            "## Calibration of the omitted classes' bias",
            "",
            "Shift chosen per strategy and the test accuracy it gives (mean over seeds). `oracle-test` "
            "looks at the test labels (the paper's procedure): an optimistic upper bound. `validation` "
            "uses a held-out split of the training set; `prior-matching` and `prediction-share` use "
            "no labels.",
            "",
            calibration_md,
            "![Bias sweep](figures/bias_sweep.png)",
            "",
            "## Figures",
            "",
            "![Per-class accuracy](figures/per_class_accuracy.png)",
            "",
            "![Learning curves](figures/learning_curves.png)",
            "",
            "## Run",
            "",
            f"- Wall time {wall_time_s:.1f} s; training time per group: {times}.",
            *provenance_lines(config, result),
            "",
        ]
    )
    return Rendering(
        texts={
            "table.md": md + "\n" + overall_md,
            "table.csv": table_csv(means, ci95, columns, classes),
            "per_seed.csv": per_seed_csv(result["per_seed"], seeds_of, classes),
            "report.md": report,
        },
        figures={
            "per_class_accuracy": lambda: per_class_bars(means, ci95, columns, classes),
            "learning_curves": lambda: learning_curves(histories, monitors),
            "bias_sweep": lambda: bias_sweep(result["bias_curves"], marks, omit_label),
        },
        printed=[md, overall_md, calibration_md],
        frames=lambda: (
            ci_frame(means, ci95, {**{str(c): name for c, name in enumerate(classes)}, "Avg": "Avg"}),
            ci_frame(
                {
                    "accuracy (%)": {c: overall[c]["accuracy"][0] for c in columns},
                    "errors": {c: overall[c]["errors"][0] for c in columns},
                },
                {
                    "accuracy (%)": {c: overall[c]["accuracy"][1] for c in columns},
                    "errors": {c: overall[c]["errors"][1] for c in columns},
                },
                dict(zip(columns, columns)),
            ),
        ),
    )
