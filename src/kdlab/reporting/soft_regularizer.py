"""The soft-regularizer results: per fraction, test accuracy of hard labels (last epoch and
early-stopped) and soft targets, paired comparisons and the paper's 3% claim (analysis), then
the tables, figures and report (rendering)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from kdlab.reporting.figures import accuracy_by_fraction, validation_curves
from kdlab.reporting.frames import records_frame
from kdlab.reporting.stats import mean_ci, paired
from kdlab.reporting.table import cell, markdown, provenance_lines
from kdlab.result import Rendering

if TYPE_CHECKING:
    from kdlab.result import Analysis, Measured

LABELS = {
    "hard": "Hard labels",
    "early": "Hard labels, early stopping",
    "soft": "Soft targets",
    "soft_early": "Soft targets, early stopping",
}
# Section 5 of the paper (speech, frame accuracy): 3% of the data with hard labels and early
# stopping, 3% with soft targets, all the data with hard labels
PAPER = {"fraction": 3.0, "early": 44.5, "soft": 57.0, "full": 58.9}
RECOVERED = 0.8  # share of the gap to full data that counts as "nearly recovers" (paper: 87%)


def _summarise(measured: list[dict]) -> list[dict]:
    """Each row with the mean ± CI of every method and the paired soft-vs-hard comparisons."""
    rows = [dict(row) for row in measured]
    full = next((r for r in rows if r["fraction"] == 100), None)
    for row in rows:
        m = row["methods"]
        row["summary"] = {
            k: {
                "accuracy": mean_ci(v["accuracy"]),
                "errors": mean_ci(v["errors"]),
                "epoch": mean_ci(v["epoch"]),
            }
            for k, v in m.items()
        }
        row["soft_minus_early"] = paired(m["soft"]["accuracy"], m["early"]["accuracy"]).as_dict()
        row["soft_minus_hard"] = paired(m["soft"]["accuracy"], m["hard"]["accuracy"]).as_dict()
        row["recovered"] = None
        if full is not None and row is not full:
            gap = mean_ci(full["methods"]["hard"]["accuracy"])[0] - row["summary"]["early"]["accuracy"][0]
            if gap > 0:
                row["recovered"] = row["soft_minus_early"]["mean_diff"] / gap
    return rows


def beats(diff: dict) -> bool:
    """Better in a paired comparison: the 95% interval above zero (with one seed: above zero)."""
    return diff["mean_diff"] - (diff["ci95"] or 0.0) > 0


def findings(results: dict) -> list[str]:
    rows, n = results["rows"], len(results["seeds"])
    lines = [
        f"Teacher test accuracy {results['teacher']['accuracy']:.2f}%; {n} student seed(s) per cell, each "
        f"its own class-stratified sample of a {results['pool_size']}-image pool (nested across "
        f"fractions); early stopping on a {results['val_size']}-image validation split outside the pool"
        + ("; cells are mean ± 95% CI half-width (Student t)." if n > 1 else "."),
    ]
    wins = [r for r in rows if r["fraction"] < 100 and beats(r["soft_minus_early"])]
    small = [r for r in rows if r["fraction"] < 100]
    won = ", ".join(f"{r['fraction']:g}%" for r in wins)
    lines.append(
        f"Soft targets beat early-stopped hard labels (paired, 95% CI above zero) at {len(wins)} of "
        f"{len(small)} fractions below 100%" + (f": {won}." if wins else ".")
    )
    for r in rows:
        s, d = r["summary"], r["soft_minus_early"]
        rec = "" if r["recovered"] is None else f"; soft targets recover {100 * r['recovered']:.0f}% of the "
        rec += "" if r["recovered"] is None else "gap between early stopping and hard labels on all data"
        lines.append(
            f"{r['fraction']:g}% ({r['images']} images, {r['epochs']} epochs): hard labels "
            f"{s['hard']['accuracy'][0]:.2f}% at the last epoch, {s['early']['accuracy'][0]:.2f}% with early "
            f"stopping (epoch {s['early']['epoch'][0]:.0f} on average), soft targets "
            f"{s['soft']['accuracy'][0]:.2f}%; soft − early-stopped {d['mean_diff']:+.2f}"
            + ("" if d["ci95"] is None else f" ± {d['ci95']:.2f}")
            + f" points{rec}."
        )
    paper = (
        f"The paper's claim (speech, 3% of the data: hard labels with early stopping {PAPER['early']}%, "
        f"soft targets {PAPER['soft']}%, all data {PAPER['full']}%: soft targets recover 87% of the gap)"
    )
    if not any(r["fraction"] == 100 for r in rows):
        lines.append(f"{paper} needs the 100% fraction as its reference: not judged here.")
    else:
        holds = [r for r in small if beats(r["soft_minus_early"]) and (r["recovered"] or 0) >= RECOVERED]
        at = ", ".join(f"{r['fraction']:g}%" for r in holds) or "none of the fractions"
        claim = (
            f"{paper}, read as soft targets beating early stopping and recovering at least "
            f"{100 * RECOVERED:.0f}% of the gap, holds here at {at}"
        )
        paper_row = next((r for r in rows if r["fraction"] == PAPER["fraction"]), None)
        if paper_row is not None and paper_row["recovered"] is not None:
            verdict = "holds" if paper_row in holds else "does not hold"
            claim += f"; at 3% it {verdict} ({100 * paper_row['recovered']:.0f}% of the gap recovered)"
        lines.append(claim + ".")

    def stop_gain(method: str) -> list[float]:
        """Test accuracy at the epoch of lowest validation loss minus at the last epoch, per fraction."""
        early = "early" if method == "hard" else "soft_early"
        return [r["summary"][early]["accuracy"][0] - r["summary"][method]["accuracy"][0] for r in rows]

    soft, hard = stop_gain("soft"), stop_gain("hard")
    lines.append(
        f"Early stopping (the epoch of lowest validation loss) changes the test accuracy of the "
        f"soft-target students by {min(soft):+.2f} to {max(soft):+.2f} points across fractions, that "
        f"of the hard-label students by {min(hard):+.2f} to {max(hard):+.2f}"
        + (
            ": their validation loss reaches its minimum before their accuracy stops improving."
            if max(hard) <= 0
            else "."
        )
    )
    return lines


def _table(rows: list[dict]) -> str:
    header = [
        "Fraction",
        "Images",
        "Epochs",
        "Hard",
        "Hard, early stop",
        "Stop epoch",
        "Soft",
        "Soft − Hard early stop",
    ]
    lines = []
    for r in rows:
        s, d = r["summary"], r["soft_minus_early"]
        lines.append(
            [
                f"{r['fraction']:g}%",
                str(r["images"]),
                str(r["epochs"]),
                cell(*s["hard"]["accuracy"], 2),
                cell(*s["early"]["accuracy"], 2),
                cell(*s["early"]["epoch"], 0),
                cell(*s["soft"]["accuracy"], 2),
                ("+" if d["mean_diff"] >= 0 else "") + cell(d["mean_diff"], d["ci95"], 2),
            ]
        )
    return markdown(header, lines)


def _errors_table(rows: list[dict]) -> str:
    header = ["Fraction", *(f"{LABELS[k]} errors" for k in LABELS)]
    return markdown(
        header,
        [[f"{r['fraction']:g}%", *(cell(*r["summary"][k]["errors"], 0) for k in LABELS)] for r in rows],
    )


def _csv(rows: list[dict], seeds: list[int]) -> str:
    """Long format: one row per fraction, method and seed."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "fraction",
            "images",
            "method",
            "seed",
            "test_accuracy",
            "test_errors",
            "epoch",
            "val_accuracy",
            "val_loss",
        ]
    )
    for r in rows:
        for method, v in r["methods"].items():
            for i, seed in enumerate(seeds):
                writer.writerow(
                    [
                        f"{r['fraction']:g}",
                        r["images"],
                        method,
                        seed,
                        f"{v['accuracy'][i]:.2f}",
                        v["errors"][i],
                        v["epoch"][i],
                        f"{v['val_accuracy'][i]:.2f}",
                        f"{v['val_loss'][i]:.4f}",
                    ]
                )
    return buf.getvalue()


def analyse(measured: Measured) -> dict:  # kdlab.protocols.soft_regularizer.SoftRegularizerMeasured
    """What results.json holds besides the run's record: every fraction's numbers with their
    summaries and paired comparisons, the findings, and the per-seed metrics sweeps read."""
    results = {
        "seeds": measured.seeds,
        "pool_size": measured.pool_size,
        "val_size": measured.val_size,
        "teacher": measured.teacher,
        "rows": _summarise(measured.rows),
    }
    smallest = min(results["rows"], key=lambda row: row["fraction"])["methods"]
    metrics = {}
    for prefix in ("val_", ""):
        for method in ("soft", "early", "hard"):
            for key in ("accuracy", "loss" if prefix else "errors"):
                metrics[f"{method}_{prefix}{key}"] = smallest[method][prefix + key]
    return {**results, "findings": findings(results), "metrics": metrics}


def render(analysis: Analysis) -> Rendering:
    """The tables, report and figures of an analysed study (nothing is written here)."""
    result, config = analysis.data, analysis.measured.settings
    rows, lines = result["rows"], result["findings"]
    table_md, errors_md = _table(rows), _errors_table(rows)
    curve_row = min(rows, key=lambda r: abs(r["fraction"] - PAPER["fraction"]))
    report = "\n".join(
        [
            f"# Soft targets as regularisers ({config.dataset})",
            "",
            "Test accuracy (%) of students that see only a fraction of the training images.",
            "",
            table_md,
            "Test errors:",
            "",
            errors_md,
            "## Findings",
            "",
            *[f"- {line}" for line in lines],
            "",
            "![Accuracy by fraction](figures/accuracy_by_fraction.png)",
            "",
            f"![Validation curves at {curve_row['fraction']:g}%](figures/validation_curves.png)",
            "",
            "## Run",
            "",
            f"- Wall time {result['wall_time_s']:.1f} s; teacher {result['teacher']['wall_time_s']:.0f} s"
            + (" (reused)" if result["teacher"]["reused"] else "")
            + "; students per fraction: "
            + "; ".join(
                f"{r['fraction']:g}% {r['wall_time_s']:.0f} s" + (" (reused)" if r["reused"] else "")
                for r in rows
            )
            + ".",
            *provenance_lines(config, result),
            "",
        ]
    )
    return Rendering(
        texts={
            "table.md": table_md + "\n" + errors_md,
            "table.csv": _csv(rows, result["seeds"]),
            "report.md": report,
        },
        figures={
            "accuracy_by_fraction": lambda: accuracy_by_fraction(rows, LABELS),
            "validation_curves": lambda: validation_curves(curve_row["histories"], curve_row["fraction"]),
        },
        printed=[table_md],
        frames=lambda: (
            records_frame(
                [
                    {"fraction": r["fraction"], "method": LABELS[m], "accuracy (%)": a, "ci95": hw}
                    for r in rows
                    for m, (a, hw) in ((m, r["summary"][m]["accuracy"]) for m in LABELS)
                ]
            ).pivot(index="fraction", columns="method", values="accuracy (%)")[list(LABELS.values())],
            records_frame(
                [
                    {
                        "fraction": r["fraction"],
                        "soft - early stop": r["soft_minus_early"]["mean_diff"],
                        "ci95": r["soft_minus_early"]["ci95"],
                        "p": r["soft_minus_early"]["p_value"],
                        "recovered share of the gap": r["recovered"],
                    }
                    for r in rows
                ],
                "fraction",
            ),
        ),
    )
