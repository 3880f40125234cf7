"""Everything the mythical-digit run writes: table (md/csv/json), figures, report, terminal."""

from __future__ import annotations

from pathlib import Path

from kdlab.config import to_dict
from kdlab.io import atomic_write_json, atomic_write_text
from kdlab.reporting.figures import learning_curves, per_class_bars
from kdlab.reporting.findings import detect_overfitting
from kdlab.reporting.table import build_table, overall_markdown, table_csv, table_markdown


def _findings(table, overall, columns, classes, omit, config, overfit, test_counts) -> list[str]:
    _, norm, kd, norm_no, kd_no, norm_b, kd_b = columns
    names = ", ".join(classes[c] for c in omit)
    n_omit = sum(test_counts[c] for c in omit)

    def on_omitted(col: str) -> float:  # accuracy on the omitted classes' test images
        return sum(table[col][str(c)] * test_counts[c] for c in omit) / n_omit

    def acc(col: str) -> float:
        return 100 * overall[col]["accuracy"]

    gain_norm = on_omitted(norm_b) - on_omitted(norm_no)
    gain_kd = on_omitted(kd_b) - on_omitted(kd_no)
    lines = [
        f"The teacher gets {acc('Teacher'):.2f}% of the test set right "
        f"({overall['Teacher']['errors']} errors).",
        f"On all training data, the distilled student gets {acc(kd):.2f}% against "
        f"{acc(norm):.2f}% for the student trained on hard labels "
        f"({acc(kd) - acc(norm):+.2f} points; {overall[kd]['errors']} vs "
        f"{overall[norm]['errors']} errors).",
        f"Without a single training example of class {names}, the students get "
        f"{on_omitted(norm_no):.1f}% (Norm) and {on_omitted(kd_no):.1f}% (KD) of its "
        f"{n_omit} test images right.",
        f"Raising the output bias of class {names} by {config.bias:+g} brings them to "
        f"{on_omitted(norm_b):.1f}% (Norm, {gain_norm:+.1f} points) and {on_omitted(kd_b):.1f}% "
        f"(KD, {gain_kd:+.1f} points): the bias gains the KD student "
        f"{gain_kd - gain_norm:+.1f} points more on class {names} than the Norm student.",
        f"Overall accuracy after the bias: {acc(norm_b):.2f}% (Norm) and {acc(kd_b):.2f}% (KD), "
        f"against {acc(norm_no):.2f}% and {acc(kd_no):.2f}% before.",
    ]
    for name, sentence in overfit.items():
        lines.append(
            f"{name}: overfitting detected — {sentence}."
            if sentence
            else f"{name}: no overfitting detected (validation loss did not rise while training loss fell)."
        )
    lines.append(
        f"Soft-target term {'scaled by T^2 (the paper)' if config.t2 else 'not scaled by T^2'}, "
        f"T = {config.temperature:g}, alpha = {config.alpha:g}. This is one run with seed "
        f"{config.seed}: the No-{names} numbers of single runs vary widely between seeds."
    )
    return lines


def write_mythical_digit_outputs(
    *,
    out: Path,
    config,
    columns,
    classes,
    omit,
    results,
    models,
    val_name,
    provenance,
    wall_time_s,
    test_counts,
    quiet,
) -> dict:
    table = build_table(columns, len(classes), {c: results[c]["per_class"] for c in columns})
    overall = {
        c: {
            "accuracy": results[c]["accuracy"],
            "errors": results[c]["errors"],
            "loss": results[c]["loss"],
        }
        for c in columns
    }
    students = columns[1:5]
    histories = {name: models[name].record["history"] for name in ["Teacher", *students]}
    overfit = {name: detect_overfitting(histories[name]) for name in students}
    md = table_markdown(table, columns, classes)
    overall_md = overall_markdown(overall, columns)
    findings = _findings(table, overall, columns, classes, omit, config, overfit, test_counts)

    figures = out / "figures"
    learning_curves(histories, val_name, figures / "learning_curves.png")
    per_class_bars(table, columns, classes, figures / "per_class_accuracy.png")
    atomic_write_text(out / "table.md", md + "\n" + overall_md)
    atomic_write_text(out / "table.csv", table_csv(table, columns, classes))

    model_info = {
        name: {
            "folder": str(models[name].folder.relative_to(out)),
            "key": models[name].record["key"],
            "reused": models[name].reused,
            "group_wall_time_s": models[name].record["group_wall_time_s"],
        }
        for name in ["Teacher", *students]
    }
    times = "; ".join(
        f"{name} {info['group_wall_time_s']:.0f} s" + (" (reused)" if info["reused"] else "")
        for name, info in model_info.items()
    )
    report = "\n".join(
        [
            f"# Mythical class: {', '.join(classes[c] for c in omit)} ({config.dataset})",
            "",
            "Per-class test accuracy (%); Avg is the mean of the per-class accuracies.",
            "",
            md,
            overall_md,
            "## Findings",
            "",
            *[f"- {line}" for line in findings],
            "",
            "## Figures",
            "",
            "![Per-class accuracy](figures/per_class_accuracy.png)",
            "",
            f"![Learning curves](figures/learning_curves.png) — validation curves on the {val_name}.",
            "",
            "## Run",
            "",
            f"- Wall time {wall_time_s:.1f} s; training time per group: {times}.",
            f"- Config: `{to_dict(config)}`",
            f"- Data: {config.dataset}, IDX sha256 "
            + ", ".join(f"{k} {v[:12]}…" for k, v in provenance["data_sha256"].items()),
            f"- Versions: {provenance['versions']}",
            "",
        ]
    )
    atomic_write_text(out / "report.md", report)
    result = {
        "protocol": "mythical-digit",
        "table": table,
        "overall": overall,
        "omitted_classes": [classes[c] for c in omit],
        "overfitting": overfit,
        "findings": findings,
        "models": model_info,
        "wall_time_s": wall_time_s,
        **provenance,
    }
    atomic_write_json(out / "results.json", result)
    if not quiet:
        print()
    print(md)
    print(overall_md)
    for line in findings:
        print(f"- {line}")
    print(f"\nwrote {out}/ (table.md, table.csv, results.json, report.md, figures/) in {wall_time_s:.1f} s")
    return result
