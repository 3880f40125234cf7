"""What the hinton2015 run writes: the side-by-side table, the T-sweep figure, the report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdlab.config import to_dict
from kdlab.reporting.figures import learning_curves, temperature_sweep
from kdlab.reporting.frames import records_frame
from kdlab.reporting.table import markdown
from kdlab.result import Rendering

if TYPE_CHECKING:
    from kdlab.result import Analysis, Measured, Stage

CURVES = ("Teacher", "Hard", "KD", "KD No3", "KD 7,8 only")


def fmt_value(value, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if unit == "% error":
        return f"{value:.1f}"
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def _diff(row: dict) -> str:
    d = row["difference"]
    if d is None:
        return "–"
    return f"{d:+g}" if row["unit"] != "% error" and float(d).is_integer() else f"{d:+.1f}"


def seed_range(row: dict) -> str:
    """The student seeds' min–max, where a row has several."""
    if len(row["per_seed"]) < 2 or row["min"] is None:
        return "–"
    return f"{fmt_value(row['min'], row['unit'])}–{fmt_value(row['max'], row['unit'])}"


def seed_mean(values: list) -> float:
    """One seed's value itself (an integer count stays one), else the seeds' mean."""
    return values[0] if len(values) == 1 else sum(values) / len(values)


def sweep_cell(values: list[int]) -> str:
    """A T-sweep point: one seed's errors, or the seeds' mean with their min–max."""
    if len(values) == 1:
        return str(values[0])
    return f"{seed_mean(values):.1f} ({min(values)}–{max(values)})"


def table_markdown(rows: list[dict]) -> str:
    """The side-by-side table; with several student seeds, kdlab's value is their mean and a
    column gives their min–max."""
    seeded = any(len(r["per_seed"]) > 1 for r in rows)
    head = ["Experiment", "Paper", "kdlab (mean)" if seeded else "kdlab", "kdlab − paper"]
    return markdown(
        [*head, *(["Seeds: min–max"] if seeded else []), "Unit", "Training of its stage (s)"],
        [
            [
                r["experiment"],
                fmt_value(r["paper"], r["unit"]),
                fmt_value(r["kdlab"], r["unit"]),
                _diff(r),
                *([seed_range(r)] if seeded else []),
                r["unit"],
                f"{r['stage_seconds']:.1f}",
            ]
            for r in rows
        ],
    )


def findings(rows: list[dict]) -> list[str]:
    """Every numeric row, as matching the paper or falling short of it, and by how much."""
    lines = []
    for r in rows:
        if r["difference"] is None:
            continue
        verdict = "matches or beats the paper" if r["difference"] <= 0 else "falls short of the paper by"
        amount = "" if r["difference"] <= 0 else f" {_diff(r)[1:]} {r['unit']}"
        lines.append(
            f"{r['experiment']}: {fmt_value(r['kdlab'], r['unit'])} vs {fmt_value(r['paper'], r['unit'])}"
            f" {r['unit']}, {verdict}{amount}"
        )
    return lines


def table_row(measured: tuple, stage: Stage) -> dict:
    """One line of the side-by-side table: the mean over the student seeds' values (one value:
    itself) with their min and max; its stage names the training it needed, whose recorded
    training time is the row's time."""
    experiment, paper, values, unit, name = measured
    numeric = all(isinstance(v, (int, float)) for v in values)
    kdlab = seed_mean(values) if numeric else values[0]
    return {
        "experiment": experiment,
        "paper": paper,
        "kdlab": kdlab,
        "difference": kdlab - paper if numeric and isinstance(paper, (int, float)) else None,
        "per_seed": values,
        "min": min(values) if numeric else None,
        "max": max(values) if numeric else None,
        "unit": unit,
        "stage": name,
        "stage_seconds": stage.training_seconds,
        "reused": stage.reused,
    }


def analyse(measured: Measured) -> dict:  # kdlab.protocols.hinton2015.Hinton2015Measured
    """The rows, the T-sweep, the shifts and the stages as data, with their findings."""
    rows = [table_row(row, measured.stages[row[4]]) for row in measured.rows]
    stages = {
        name: {
            "seconds": s.seconds,
            "cpu_seconds": s.cpu_seconds,
            "training_seconds": s.training_seconds,
            "reused": s.reused,
        }
        for name, s in measured.stages.items()
    }
    return {
        "config": to_dict(measured.settings),
        "rows": rows,
        "sweep": measured.sweep,
        "shifts": measured.shifts,
        "stages": stages,
        "findings": findings(rows),
    }


def render(analysis: Analysis) -> Rendering:
    """The table, report and figures of the analysed rows (nothing is written here)."""
    result, config, models = analysis.data, analysis.measured.settings, analysis.measured.models
    histories = {m.name: m.record["history"] for group in models.values() for m in group}
    rows, sweep, shifts, stages = result["rows"], result["sweep"], result["shifts"], result["stages"]
    wall_time_s, seeds = result["wall_time_s"], config.student_seeds()
    curves = {name: [histories[name]] for name in CURVES if name in histories}
    table = table_markdown(rows)
    shift_lines = [
        f"- {classes}: "
        + ", ".join(
            f"{how} " + ("not found" if None in found else " ".join(f"{v:+.2f}" for v in found))
            for how, found in values.items()
        )
        for classes, values in shifts.items()
    ]
    sweep_rows = [
        [f"{width}-{width}", sweep_cell(entry["hard_per_seed"]), *(sweep_cell(v) for v in entry["per_seed"])]
        for width, entry in sweep.items()
    ]
    first = next(iter(sweep.values()))  # every width has the same temperatures and seeds
    temps, sweep_seeds = first["temperature"], first["seeds"]
    over = (
        ""
        if len(sweep_seeds) == 1
        else f" — mean (min–max) over the students of seeds {', '.join(map(str, sweep_seeds))}"
    )
    training = sum(s["training_seconds"] for s in stages.values())
    report = "\n".join(
        [
            "# Hinton, Vinyals & Dean (2015), section 3: the paper's MNIST numbers and kdlab's",
            "",
            f"Budget `{config.budget}`; wall time of this run {wall_time_s:.1f} s; training time of all "
            f"models as recorded when they were trained {training:.1f} s. "
            "Errors are counted on the 10,000 test images. Differences are kdlab minus paper: negative "
            "is better.",
            "",
            table,
            "## How the bias shifts were chosen",
            "",
            "- paper: the paper's value (+3.5 for class 3; −7.6 for classes 7 and 8), which the paper "
            "chose on the test set for its own model.",
            "- best on test: the shift that minimises this model's test errors, found exactly over all "
            "thresholds (the paper's procedure applied to this model; optimistic).",
            "- prior matching: no labels; the shift that makes the student's mean probability of the "
            "moved classes on the test images equal the teacher's.",
            "- prediction share: no test labels; the shift at which the share of test images predicted "
            "as the moved classes equals their share among the training labels.",
            "",
            f"Shifts per student seed ({', '.join(map(str, seeds))}):",
            "",
            *shift_lines,
            "",
            f"## Temperature sweep (test errors{over})",
            "",
            markdown(["Student", "hard labels", *(f"T={t:g}" for t in temps)], sweep_rows),
            "![T-sweep](figures/temperature_sweep.png)",
            "",
            "## Training stages",
            "",
            markdown(
                ["Stage", "Training (s, as recorded)", "This run: wall (s)", "This run: CPU (s)", "Reused"],
                [
                    [
                        n,
                        f"{s['training_seconds']:.1f}",
                        f"{s['seconds']:.1f}",
                        f"{s['cpu_seconds']:.1f}",
                        "yes" if s["reused"] else "no",
                    ]
                    for n, s in stages.items()
                ],
            ),
            "![Learning curves](figures/learning_curves.png)",
            "",
            "## Findings",
            "",
            *(f"- {line}" for line in result["findings"]),
            "",
        ]
    )
    sweep_frame = records_frame(
        [
            {"student": f"{width}-{width}", "seed": seed, "T": t, "errors": e, "hard-label errors": hard}
            for width, entry in sweep.items()
            for t, errors in zip(entry["temperature"], entry["per_seed"])
            for seed, e, hard in zip(entry["seeds"], errors, entry["hard_per_seed"])
        ]
    )
    return Rendering(
        texts={"table.md": table, "report.md": report},
        figures={
            "temperature_sweep": lambda: temperature_sweep(sweep),
            "learning_curves": lambda: learning_curves(curves, dict.fromkeys(curves, "test set")),
        },
        printed=[table],
        frames=lambda: (records_frame(rows, "experiment"), sweep_frame),
    )
