"""The sweep's results table: one row per point and seed (CSV and JSON records), and a
markdown summary with mean ± 95% CI over seeds per point."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from kdlab.io import atomic_write_text
from kdlab.reporting.stats import mean_ci, paired
from kdlab.reporting.table import cell, markdown
from kdlab.settings.metric import Metric


def cell_text(value: Any) -> str:
    """A config value as one table cell (hidden widths as '300 300')."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)


def short_text(value: Any) -> str:
    """A config value for people: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else cell_text(value)


def table_rows(records: list[dict], swept: list[str], metrics: tuple[str, ...]) -> list[dict]:
    """Flat rows: point id, swept values, seed, the requested metrics, the other metrics, and
    every config field."""
    rows = []
    for record in records:
        for seed_row in record["rows"]:
            order = [*metrics, *(m for m in seed_row if m not in metrics and m != "seed")]
            rows.append(
                {
                    "point": record["point"],
                    **{name: record["config"][name] for name in swept},
                    "seed": seed_row["seed"],
                    **{m: seed_row[m] for m in order},
                    "teacher_reused": record["teacher_reused"],
                    **{f"config.{k}": v for k, v in record["config"].items()},
                }
            )
    return rows


def write_table(out: Path, rows: list[dict]) -> None:
    """results.csv and results.jsonl (one JSON record per line), written atomically."""
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: cell_text(v) for k, v in row.items()} for row in rows)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(row) + "\n" for row in rows))


def summary_markdown(records: list[dict], swept: list[str], metrics: tuple[Metric, ...]) -> str:
    """One line per point (the swept values and each metric's mean ± CI half-width over seeds),
    then the findings computed from them (`summary_findings`)."""
    header = [*swept, "seeds", *(m.name for m in metrics)]
    lines = []
    for record in records:
        cells = [short_text(record["config"][name]) for name in swept]
        cells.append(str(len(record["rows"])))
        for metric in metrics:
            mean, hw = mean_ci([row[metric.name] for row in record["rows"]])
            cells.append(cell(mean, hw, 2))
        lines.append(cells)
    findings = "".join(f"- {line}\n" for line in summary_findings(records, swept, metrics))
    return markdown(header, lines) + ("\n" + findings if findings else "")


def summary_findings(records: list[dict], swept: list[str], metrics: tuple[Metric, ...]) -> list[str]:
    """Per requested metric: the best point, the points a paired t-test over the shared seeds
    cannot tell from it (p >= 0.05), and the range of the points' means; so that a sweep's
    reading is computed, not typed, and a rerun on other numbers rewrites it."""
    lines = []
    for declared in metrics:
        metric, direction = declared.name, declared.higher_is_better
        if direction is None or len(records) < 2:
            continue
        by_seed = [{row["seed"]: row[metric] for row in r["rows"]} for r in records]
        means = [sum(v.values()) / len(v) for v in by_seed]
        best = (max if direction else min)(range(len(records)), key=means.__getitem__)
        mean, hw = mean_ci(list(by_seed[best].values()))
        where = ", ".join(f"{name} = {short_text(records[best]['config'][name])}" for name in swept)
        line = f"{metric}: best at {where}, {cell(mean, hw, 2)}"
        tied = []
        for i, values in enumerate(by_seed):
            seeds = sorted(set(values) & set(by_seed[best]))
            if i == best or len(seeds) < 2:
                continue
            p = paired([by_seed[best][s] for s in seeds], [values[s] for s in seeds]).p_value
            tied.append(p is not None and p >= 0.05)
        if tied:
            line += (
                f"; {sum(tied)} of the other {len(tied)} points are not distinguishable from it "
                "(paired t-test over their shared seeds, p ≥ 0.05)"
            )
        lines.append(f"{line}; the points' means range from {min(means):.2f} to {max(means):.2f}")
    return lines
