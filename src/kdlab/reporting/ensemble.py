"""The ensemble results: members, ensembles by size and mean, the students and the fraction of
the ensemble's gain each recovers with its bootstrap interval, the paired comparisons and the
paper's claim (analysis), then the table, figure and report (rendering)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import numpy as np

from kdlab.reporting.figures import accuracy_by_ensemble_size
from kdlab.reporting.frames import records_frame
from kdlab.reporting.stats import mean_ci, paired
from kdlab.reporting.table import cell, markdown, provenance_lines
from kdlab.result import Rendering

if TYPE_CHECKING:
    from kdlab.result import Analysis, Measured

# Section 4 of the paper (speech, test frame accuracy %): the baseline model, the ensemble of
# 10 and one model distilled from it ("more than 80% of the improvement")
PAPER = {"single": 58.9, "ensemble": 61.1, "distilled": 60.8}
PAPER_RECOVERED = (PAPER["distilled"] - PAPER["single"]) / (PAPER["ensemble"] - PAPER["single"])
CLAIM = 0.8  # the paper's "more than 80%"
STUDENTS = {
    "distilled": "distilled from the ensemble",
    "one_member": "distilled from one member",
    "hard": "hard labels alone",
}
BOOTSTRAP = 10_000  # resamples of the interval of the recovered fraction
BOOTSTRAP_SEED = 0


def recovered(students: list[float], members: list[float], ensemble: float) -> dict:
    """(mean student - mean member) / (ensemble - mean member), and its 95% percentile bootstrap
    interval: the student seeds and the members resampled independently (the ensemble of all
    members is one number). None where the ensemble is no better than its mean member."""
    s, m = np.asarray(students, float), np.asarray(members, float)
    gain = ensemble - m.mean()
    if gain <= 0:
        return {"fraction": None, "ci95": None, "resamples": 0}
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    s_mean = s[rng.integers(0, len(s), (BOOTSTRAP, len(s)))].mean(1)
    m_mean = m[rng.integers(0, len(m), (BOOTSTRAP, len(m)))].mean(1)
    ok = ensemble - m_mean > 0
    fractions = (s_mean[ok] - m_mean[ok]) / (ensemble - m_mean[ok])
    interval = (
        [float(np.percentile(fractions, 2.5)), float(np.percentile(fractions, 97.5))] if len(s) > 1 else None
    )
    return {"fraction": float((s.mean() - m.mean()) / gain), "ci95": interval, "resamples": int(ok.sum())}


def _chosen(choice: dict) -> dict:
    return choice["candidates"][choice["chosen"]]


def findings(results: dict) -> list[str]:
    m, full, s = results["members"], results["ensemble"], results["students"]
    n, seeds = len(m["accuracy"]), len(results["seeds"])
    single, hw = m["summary"]
    ens = full["arithmetic"]
    lines = [
        f"{n} members: test accuracy {single:.2f}%"
        + ("" if hw is None else f" ± {hw:.2f} (95% interval over the members)")
        + f", {min(m['accuracy']):.2f}–{max(m['accuracy']):.2f}%. Their ensemble (arithmetic mean of the "
        f"probabilities, the paper's) {ens:.2f}%, {ens - single:+.2f} points; the geometric mean "
        f"{full['geometric']:.2f}%. The ensemble beats "
        + (
            "every member."
            if ens > max(m["accuracy"])
            else f"{sum(a < ens for a in m['accuracy'])} of the {n} members."
        ),
    ]
    for key, what in STUDENTS.items():
        acc, hw = s[key]["summary"]
        r = results["recovered"][key]
        text = (
            f"Student {what}: {acc:.2f}%" + ("" if hw is None else f" ± {hw:.2f}") + f" over {seeds} seed(s)"
        )
        if key in results["choices"]:
            c, many = _chosen(results["choices"][key]), len(results["choices"][key]["candidates"]) > 1
            how = "chosen on the validation split" if many else "as given"
            text += f" (T = {c['temperature']:g}, alpha = {c['alpha']:g}, {how})"
        if r["fraction"] is not None:
            text += f"; it recovers {100 * r['fraction']:.0f}% of the ensemble's gain"
            if r["ci95"] is not None:
                text += f" (95% bootstrap interval {100 * r['ci95'][0]:.0f}% to {100 * r['ci95'][1]:.0f}%)"
        lines.append(text + ".")
    r = results["recovered"]["distilled"]
    paper = (
        f"The paper's claim (speech: 10 models {PAPER['single']}% → ensemble {PAPER['ensemble']}%, distilled "
        f'{PAPER["distilled"]}%, {100 * PAPER_RECOVERED:.0f}% of the gain: "more than 80%")'
    )
    hard = results["recovered"]["hard"]
    d = results["comparisons"]["distilled - hard"]
    beats_hard = d["ci95"] is not None and d["mean_diff"] - d["ci95"] > 0
    if r["fraction"] is None:
        lines.append(f"{paper} cannot be judged here: the ensemble is no better than its mean member.")
    elif hard["fraction"] is not None and hard["fraction"] >= CLAIM and not beats_hard:
        # the students' own recipe, not the soft targets, makes up the gain: no test of the claim
        lines.append(
            f"{paper} cannot be judged here: the student trained on the hard labels alone recovers "
            f"{100 * hard['fraction']:.0f}% of the gain too, and the distilled one does not beat it, so "
            "the share measures the students' recipe against the members', not what the soft targets carry."
        )
    elif r["ci95"] is None:
        verdict = "holds" if r["fraction"] > CLAIM else "does not hold"
        lines.append(
            f"{paper} {verdict} with one student seed ({100 * r['fraction']:.0f}%), untested by an interval."
        )
    else:
        low, high = r["ci95"]
        verdict = (
            "holds: the whole interval is above 80%"
            if low > CLAIM
            else "does not hold: the whole interval is below 80%"
            if high < CLAIM
            else "cannot be told from 80% at these seeds: the interval holds it"
        )
        lines.append(f"{paper} {verdict}.")
    for a, b, what in (
        ("distilled", "one_member", "the ensemble's soft targets against one member's"),
        ("distilled", "hard", "the ensemble's soft targets against the hard labels"),
        ("one_member", "hard", "one member's soft targets against the hard labels"),
    ):
        d = results["comparisons"][f"{a} - {b}"]
        ci = "" if d["ci95"] is None else f" ± {d['ci95']:.2f}"
        p = "" if d["p_value"] is None else f", paired p = {d['p_value']:.3f}"
        better = d["ci95"] is not None and d["mean_diff"] - d["ci95"] > 0
        worse = d["ci95"] is not None and d["mean_diff"] + d["ci95"] < 0
        says = "better" if better else "worse" if worse else "not told apart at these seeds"
        lines.append(f"{what.capitalize()}: {d['mean_diff']:+.2f}{ci} points{p} ({says}).")
    return lines


def analyse(measured: Measured) -> dict:  # kdlab.protocols.ensemble.EnsembleMeasured
    """What results.json holds besides the run's record: every row with its interval, the
    fraction of the gain each student recovers, the paired comparisons (students of one seed
    share initialisation and data order), the findings and the per-seed metrics."""
    members = {**measured.members, "summary": mean_ci(measured.members["accuracy"])}
    full = next(e for e in measured.ensembles if e["size"] == len(measured.members["accuracy"]))
    ensemble = {mean: full[mean]["accuracy"][0] for mean in ("arithmetic", "geometric")}
    ensemble["errors"] = {mean: full[mean]["errors"][0] for mean in ("arithmetic", "geometric")}
    students = {k: {**v, "summary": mean_ci(v["accuracy"])} for k, v in measured.students.items()}
    single = float(np.mean(members["accuracy"]))
    results = {
        "seeds": measured.seeds,
        "split": measured.split,
        "members": members,
        "ensembles": [
            {**e, **{f"{mean}_summary": mean_ci(e[mean]["accuracy"]) for mean in ("arithmetic", "geometric")}}
            for e in measured.ensembles
        ],
        "ensemble": ensemble,
        "students": students,
        "choices": measured.choices,
        "recovered": {
            k: recovered(v["accuracy"], members["accuracy"], ensemble["arithmetic"])
            for k, v in students.items()
        },
        "comparisons": {
            f"{a} - {b}": paired(students[a]["accuracy"], students[b]["accuracy"]).as_dict()
            for a, b in (("distilled", "one_member"), ("distilled", "hard"), ("one_member", "hard"))
        },
        "paper": {**PAPER, "recovered": PAPER_RECOVERED},
        "stages_s": {name: stage.seconds for name, stage in measured.stages.items()},
        # the wall time of each stage's training, as recorded when its models were trained
        "training_s": {name: stage.training_seconds for name, stage in measured.stages.items()},
    }
    gain = ensemble["arithmetic"] - single
    metrics = {f"{k}_{q}": v[q] for k, v in students.items() for q in ("accuracy", "errors")}
    metrics["recovered"] = [
        (a - single) / gain if gain > 0 else float("nan") for a in students["distilled"]["accuracy"]
    ]
    return {**results, "findings": findings(results), "metrics": metrics}


def _rows(result: dict) -> list[dict]:
    """The rows of the table: each model's accuracy and errors (mean, 95% half-width), the
    chosen T and alpha of a distilled student, the share of the gain it recovers, the paper's."""
    n = len(result["members"]["accuracy"])

    def row(model: str, accuracy: list[float], errors: list[int], paper: float | None = None) -> dict:
        return {"model": model, "T": None, "alpha": None, "accuracy": mean_ci(accuracy),
                "errors": mean_ci(errors), "recovered": None, "ci95": None, "paper": paper}  # fmt: skip

    members = result["members"]
    rows = [row(f"single member (mean of {n})", members["accuracy"], members["errors"], PAPER["single"])]
    for e in result["ensembles"]:
        if e["size"] in (1, 2, 5, n) and e["size"] > 1:
            for mean in ("arithmetic", "geometric"):
                count = len(e["members"])
                what = f"ensemble of {e['size']}, {mean} mean" + (f" ({count} disjoint)" if count > 1 else "")
                paper = PAPER["ensemble"] if e["size"] == 10 and mean == "arithmetic" else None
                rows.append(row(what, e[mean]["accuracy"], e[mean]["errors"], paper))
    for key, what in STUDENTS.items():
        s, r = result["students"][key], result["recovered"][key]
        rows.append(
            row(
                f"student, {what}",
                s["accuracy"],
                s["errors"],
                PAPER["distilled"] if key == "distilled" else None,
            )
        )
        rows[-1].update({"recovered": r["fraction"], "ci95": r["ci95"]})
        if key in result["choices"]:
            c = _chosen(result["choices"][key])
            rows[-1].update({"T": c["temperature"], "alpha": c["alpha"]})
    return rows


def _table(result: dict) -> str:
    header = [
        "Model",
        "T, α",
        "Test accuracy (%)",
        "Test errors",
        "Gain recovered [95% CI]",
        "Paper (speech, frame acc. %)",
    ]
    lines = []
    for r in _rows(result):
        share = "" if r["recovered"] is None else f"{100 * r['recovered']:.0f}%"
        if r["ci95"] is not None:
            share += f" [{100 * r['ci95'][0]:.0f}, {100 * r['ci95'][1]:.0f}]"
        paper = "" if r["paper"] is None else f"{r['paper']}"
        if r["model"].startswith("student, distilled from the ensemble"):
            paper += f" ({100 * PAPER_RECOVERED:.0f}%)"
        chosen = "" if r["T"] is None else f"{r['T']:g}, {r['alpha']:g}"
        lines.append([r["model"], chosen, cell(*r["accuracy"], 2), cell(*r["errors"], 0), share, paper])
    return markdown(header, lines)


def _choice_table(result: dict) -> str:
    rows = []
    for key, choice in result["choices"].items():
        for i, c in enumerate(choice["candidates"]):
            mark = " (chosen)" if i == choice["chosen"] else ""
            rows.append(
                [
                    STUDENTS[key],
                    f"{c['temperature']:g}",
                    f"{c['alpha']:g}",
                    ("–" if c["val_accuracy"] is None else f"{c['val_accuracy']:.2f}") + mark,
                ]
            )
    return markdown(["Teacher of the student", "T", "alpha", "Validation accuracy (%)"], rows)


def _csv(result: dict) -> str:
    """Long format: one row per model (member, ensemble, student seed)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "size", "mean", "index", "test_accuracy", "test_errors"])
    for i, (a, e) in enumerate(zip(result["members"]["accuracy"], result["members"]["errors"])):
        writer.writerow(["member", 1, "", i, f"{a:.2f}", e])
    for ens in result["ensembles"]:
        for mean in ("arithmetic", "geometric"):
            for i, (a, e) in enumerate(zip(ens[mean]["accuracy"], ens[mean]["errors"])):
                writer.writerow(["ensemble", ens["size"], mean, i, f"{a:.2f}", e])
    for key, s in result["students"].items():
        for seed, a, e in zip(result["seeds"], s["accuracy"], s["errors"]):
            writer.writerow([key, 1, "", seed, f"{a:.2f}", e])
    return buf.getvalue()


def render(analysis: Analysis) -> Rendering:
    """The tables, report and figure of an analysed run (nothing is written here)."""
    result, config = analysis.data, analysis.measured.settings
    table_md, choice_md = _table(result), _choice_table(result)
    split = result["split"]
    report = "\n".join(
        [
            f"# Distilling an ensemble into one model ({config.dataset})",
            "",
            f"{len(result['members']['accuracy'])} members of widths {'-'.join(map(str, config.hidden))} "
            f"trained on {split['train']} images; T and alpha chosen on a {split['val']}-image validation "
            "split no model trains on; intervals are 95% (Student t over members or seeds; the "
            "recovered share: percentile bootstrap).",
            "",
            table_md,
            "The choice of T and alpha (first student seed, validation split):",
            "",
            choice_md,
            "## Findings",
            "",
            *[f"- {line}" for line in result["findings"]],
            "",
            "![Accuracy by ensemble size](figures/accuracy_by_ensemble_size.png)",
            "",
            "## Run",
            "",
            f"- Wall time {result['wall_time_s']:.1f} s; "
            + "; ".join(f"{name} {s:.0f} s" for name, s in result["stages_s"].items())
            + ". Their training, as recorded when the models were trained (a reused model costs "
            + "nothing here): "
            + "; ".join(f"{name} {s:.0f} s" for name, s in result["training_s"].items())
            + f" ({sum(result['training_s'].values()) / 60:.0f} min in all).",
            *provenance_lines(config, result),
            "",
        ]
    )
    return Rendering(
        texts={"table.md": table_md + "\n" + choice_md, "table.csv": _csv(result), "report.md": report},
        figures={"accuracy_by_ensemble_size": lambda: accuracy_by_ensemble_size(result, STUDENTS)},
        printed=[table_md],
        frames=lambda: (
            records_frame(
                [
                    {
                        "model": r["model"],
                        "accuracy (%)": r["accuracy"][0],
                        "ci95": r["accuracy"][1],
                        "errors": r["errors"][0],
                        "T": r["T"],
                        "alpha": r["alpha"],
                        "paper (%)": r["paper"],
                    }
                    for r in _rows(result)
                ],
                "model",
            ),
            records_frame(
                [
                    {"student": STUDENTS[k], "recovered": r["fraction"], "ci95": r["ci95"]}
                    for k, r in result["recovered"].items()
                ],
                "student",
            ),
        ),
    )
