"""The every-digit results: a row per omitted class, before and after calibration; analysis
(summaries, findings), then rendering (tables, figure, report)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdlab.reporting.figures import omitted_class_bars
from kdlab.reporting.frames import records_frame
from kdlab.reporting.stats import mean_ci, paired
from kdlab.reporting.table import cell, markdown, provenance_lines
from kdlab.result import Rendering

if TYPE_CHECKING:
    from kdlab.result import Analysis, Measured


def _summary(row: dict, strategy: str) -> dict:
    """Means, intervals and paired comparisons of one omitted class, for one calibration."""
    cal = row["calibration"]
    after = {s: cal[s][strategy]["omitted"] for s in ("Norm", "KD")}
    return {
        "before": {s: mean_ci(row["before"][s]) for s in ("Norm", "KD")},
        "after": {s: mean_ci(after[s]) for s in ("Norm", "KD")},
        "shift": {s: mean_ci(cal[s][strategy]["shift"]) for s in ("Norm", "KD")},
        "overall_after": {s: mean_ci(cal[s][strategy]["overall"]) for s in ("Norm", "KD")},
        "kd_minus_norm_after": paired(after["KD"], after["Norm"]).as_dict(),
        "kd_minus_norm_before": paired(row["before"]["KD"], row["before"]["Norm"]).as_dict(),
    }


def analyse(measured: Measured) -> dict:  # kdlab.protocols.every_digit.EveryDigitMeasured
    """What results.json holds: each omitted class's numbers with their summaries, and findings."""
    config, teacher_accuracy, seeds = (
        measured.settings,
        measured.teacher_accuracy,
        measured.settings.student_seeds(),
    )
    first = config.calibration[0]
    rows = [
        {**row, "summary": {strategy: _summary(row, strategy) for strategy in config.calibration}}
        for row in measured.rows
    ]
    n = len(seeds)
    ranked = sorted(rows, key=lambda r: r["summary"][first]["after"]["KD"][0])
    findings = [
        f"Teacher test accuracy {teacher_accuracy:.2f}%; {n} student seed(s) per cell; "
        f"cells are accuracy (%) on the omitted class's test images"
        + (", mean ± 95% CI half-width (Student t)." if n > 1 else "."),
        f"After {first} calibration the KD students recognise the omitted class worst for "
        f"{ranked[0]['class']} ({ranked[0]['summary'][first]['after']['KD'][0]:.1f}%) and best for "
        f"{ranked[-1]['class']} ({ranked[-1]['summary'][first]['after']['KD'][0]:.1f}%).",
    ]
    wins = [
        r["class"]
        for r in rows
        if (d := r["summary"][first]["kd_minus_norm_after"])["ci95"] is not None
        and d["mean_diff"] - d["ci95"] > 0
    ]
    if n > 1:
        findings.append(
            f"KD beats Norm after calibration with the 95% interval above zero for "
            f"{len(wins)} of {len(rows)} classes" + (f" ({', '.join(wins)})." if wins else ".")
        )
    return {"seeds": seeds, "teacher_accuracy": teacher_accuracy, "rows": rows, "findings": findings}


def render(analysis: Analysis) -> Rendering:
    """The tables, report and figure of an analysed study (nothing is written here)."""
    result, config = analysis.data, analysis.measured.settings
    first, rows, findings = config.calibration[0], result["rows"], result["findings"]
    wall_time_s = result["wall_time_s"]
    header = [
        "Class",
        "Norm before",
        "KD before",
        f"Norm after ({first})",
        f"KD after ({first})",
        "KD − Norm after",
        "Shift Norm",
        "Shift KD",
    ]
    lines = []
    for row in rows:
        s = row["summary"][first]
        diff = s["kd_minus_norm_after"]
        lines.append(
            [
                row["class"],
                cell(*s["before"]["Norm"], 1),
                cell(*s["before"]["KD"], 1),
                cell(*s["after"]["Norm"], 1),
                cell(*s["after"]["KD"], 1),
                ("+" if diff["mean_diff"] >= 0 else "") + cell(diff["mean_diff"], diff["ci95"], 1),
                cell(*s["shift"]["Norm"], 2),
                cell(*s["shift"]["KD"], 2),
            ]
        )
    table_md = markdown(header, lines)
    strategies_md = markdown(
        [
            "Class",
            "Calibration",
            "Norm after",
            "KD after",
            "Norm overall",
            "KD overall",
            "Shift Norm",
            "Shift KD",
        ],
        [
            [
                row["class"],
                strategy,
                cell(*s["after"]["Norm"], 1),
                cell(*s["after"]["KD"], 1),
                cell(*s["overall_after"]["Norm"], 2),
                cell(*s["overall_after"]["KD"], 2),
                cell(*s["shift"]["Norm"], 2),
                cell(*s["shift"]["KD"], 2),
            ]
            for row in rows
            for strategy, s in row["summary"].items()
        ],
    )
    report = "\n".join(
        [
            f"# Every class as the mythical one ({config.dataset})",
            "",
            *[f"- {line}" for line in findings],
            "",
            table_md,
            "## All calibration strategies",
            "",
            "`oracle-test` chooses the shift on the test labels (optimistic); `validation` on a "
            "held-out split of the training set; `prior-matching` and `prediction-share` without labels; "
            "`fixed` is the paper's value.",
            "",
            strategies_md,
            "![Every class](figures/every_digit.png)",
            "",
            "## Run",
            "",
            f"- Wall time {wall_time_s:.1f} s; student training per class: "
            + "; ".join(
                f"{r['class']} {r['wall_time_s']:.0f} s" + (" (reused)" if r["reused"] else "") for r in rows
            ),
            *provenance_lines(config, result),
            "",
        ]
    )
    return Rendering(
        texts={"table.md": table_md + "\n" + strategies_md, "report.md": report},
        figures={"every_digit": lambda: omitted_class_bars(rows, first)},
        printed=[table_md],
        frames=lambda: (
            records_frame(_frame_rows(rows, first), "class"),
            records_frame(
                [
                    {"class": r["class"], "calibration": st, **_flat(sm)}
                    for r in rows
                    for st, sm in r["summary"].items()
                ]
            ),
        ),
    )


def _flat(summary: dict) -> dict:
    """One calibration's summary of one class as flat columns (means; CIs as `... ci95`)."""
    flat = {}
    for what in ("before", "after", "shift", "overall_after"):
        for student in ("Norm", "KD"):
            mean, hw = summary[what][student]
            flat[f"{student} {what}"] = mean
            flat[f"{student} {what} ci95"] = hw
    return flat


def _frame_rows(rows: list[dict], strategy: str) -> list[dict]:
    return [{"class": r["class"], **_flat(r["summary"][strategy])} for r in rows]
