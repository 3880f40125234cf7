"""The sweep's results table: one row per point and seed (CSV and JSON records), and a
markdown summary with mean ± 95% CI over seeds per point."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from kdlab.io import atomic_write_text
from kdlab.reporting.stats import mean_ci
from kdlab.reporting.table import cell, markdown


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


def summary_markdown(records: list[dict], swept: list[str], metrics: tuple[str, ...]) -> str:
    """One line per point: the swept values and each metric's mean ± CI half-width over seeds."""
    header = [*swept, "seeds", *metrics]
    lines = []
    for record in records:
        cells = [short_text(record["config"][name]) for name in swept]
        cells.append(str(len(record["rows"])))
        for metric in metrics:
            mean, hw = mean_ci([row[metric] for row in record["rows"]])
            cells.append(cell(mean, hw, 2))
        lines.append(cells)
    return markdown(header, lines)
