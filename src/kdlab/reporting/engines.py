"""One seeded mythical-digit study under two engines, side by side: the check that a change of
random stream (a new ENGINE_VERSION) left the statistics as they were.

    python -m kdlab.reporting.engines BEFORE AFTER > table.md

BEFORE and AFTER are two output folders of the same `kdlab run mythical-digit --seeds N`
(their `results.json`, and `reproduce.json` for the engine when `kdlab reproduce` wrote them).
Per student and metric: each engine's mean over seeds with its 95% interval, the difference
of seed i under one engine from seed i under the other (a paired t-test: the seeds share
their number, not their random stream), and whether each mean lies within the other's
interval. The teacher, one model, is shown as its one value.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kdlab.errors import KdlabError
from kdlab.reporting.stats import mean_ci, paired
from kdlab.reporting.table import cell, markdown

METRICS = (
    ("overall accuracy (%)", "per_seed_accuracy"),
    ("on the omitted class (%)", "per_seed_omitted_accuracy"),
)


def load(folder: Path) -> tuple[dict, str]:
    """A run's results and its label: engine (where recorded) and device kind."""
    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError) as err:
        raise KdlabError(f"{folder}: no readable results.json ({err})") from None
    try:
        engine = json.loads((folder / "reproduce.json").read_text()).get("engine")
    except (OSError, ValueError):
        engine = None
    label = f"engine {engine if engine is not None else '?'}, {results.get('device', '?')}"
    return results, label


def _within(mean: float, other: float, hw: float | None) -> bool:
    return hw is not None and abs(mean - other) <= hw


def compare(before: dict, after: dict) -> list[dict]:
    """One entry per (model, metric) both runs hold, with every number the table shows."""
    if before.get("seeds") != after.get("seeds"):
        raise KdlabError(f"the runs have other seeds ({before.get('seeds')} and {after.get('seeds')})")
    out = []
    for model, was in before["overall"].items():
        now = after["overall"].get(model)
        if now is None:
            continue
        for metric, key in METRICS:
            a, b = was.get(key), now.get(key)
            if not a or not b or len(a) != len(b):
                continue
            (mean_a, hw_a), (mean_b, hw_b) = mean_ci(a), mean_ci(b)
            diff = paired(b, a)
            out.append({
                "model": model, "metric": metric,
                "before": cell(mean_a, hw_a, 2), "after": cell(mean_b, hw_b, 2),
                "diff": diff, "agree": _within(mean_a, mean_b, hw_b) and _within(mean_b, mean_a, hw_a),
                "seeds": len(a),
            })  # fmt: skip
    return out


def render(before: Path, after: Path) -> str:
    (was, label_a), (now, label_b) = load(before), load(after)
    entries = compare(was, now)
    rows = []
    for e in entries:
        d = e["diff"]
        many = e["seeds"] > 1
        rows.append([
            e["model"], e["metric"], e["before"], e["after"],
            f"{d.mean:+.2f} ± {d.ci95:.2f}" if many else f"{d.mean:+.2f}",
            f"{d.p_value:.2f}" if d.p_value is not None else "–",
            ("yes" if e["agree"] else "**no**") if many else "–",
        ])  # fmt: skip
    header = [
        "Model", "Metric", label_a, label_b, "after − before (paired, 95% CI)", "p (paired t)",
        "means within each other's 95% CI",
    ]  # fmt: skip
    agree = [e["agree"] for e in entries if e["seeds"] > 1]
    summary = (
        f"{sum(agree)} of {len(agree)} seeded comparisons agree (each mean within the other's 95% "
        f"interval), over seeds {was.get('seeds')}."
    )
    return markdown(header, rows) + "\n" + summary + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        sys.stdout.write(render(Path(args[0]), Path(args[1])))
    except KdlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
