"""The per-class accuracy table: one column per model, rows per class, then Avg.

Each cell holds the values of every seed; the table shows their mean and, with more than
one seed, the half-width of the 95% Student-t confidence interval.
"""

from __future__ import annotations

import csv
import io

from kdlab.reporting.stats import mean_ci


def per_seed_table(columns: list[str], num_classes: int, per_class: dict[str, list[list[float]]]) -> dict:
    """{column: {"0": [% per seed], ..., "Avg": [mean of the per-class % per seed]}}; a class
    without test images (None: no data) is left out of Avg."""
    table = {}
    for col in columns:
        seeds = per_class[col]
        cells = {str(c): [None if s[c] is None else 100.0 * s[c] for s in seeds] for c in range(num_classes)}
        known = [[100.0 * v for v in s if v is not None] for s in seeds]
        cells["Avg"] = [sum(v) / len(v) if v else None for v in known]
        table[col] = cells
    return table


def summarise(per_seed: dict) -> tuple[dict, dict]:
    """Means and CI half-widths (None for one seed) of a per-seed table, in the same shape."""
    means, ci95 = {}, {}
    for col, cells in per_seed.items():
        stats = {row: (None, None) if None in values else mean_ci(values) for row, values in cells.items()}
        means[col] = {row: m for row, (m, _) in stats.items()}
        ci95[col] = {row: hw for row, (_, hw) in stats.items()}
    return means, ci95


def cell(mean: float | None, hw: float | None, decimals: int) -> str:
    if mean is None:
        return "no data"
    return f"{mean:.{decimals}f}" if hw is None else f"{mean:.{decimals}f} ± {hw:.{decimals}f}"


def _rows(means: dict, ci95: dict, columns: list[str], classes: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for c, name in enumerate(classes):
        rows.append([name] + [cell(means[col][str(c)], ci95[col][str(c)], 1) for col in columns])
    rows.append(["Avg"] + [cell(means[col]["Avg"], ci95[col]["Avg"], 2) for col in columns])
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table whose columns line up in a terminal too."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"


def table_markdown(means: dict, ci95: dict, columns: list[str], classes: tuple[str, ...]) -> str:
    return markdown(["Class", *columns], _rows(means, ci95, columns, classes))


def table_csv(means: dict, ci95: dict, columns: list[str], classes: tuple[str, ...]) -> str:
    """Means, then (with several seeds) one column of CI half-widths per model."""
    several = any(hw is not None for col in columns for hw in ci95[col].values())
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Class", *columns, *([f"{c} ci95" for c in columns] if several else [])])
    for c, name in [*enumerate(classes), (None, "Avg")]:
        key, decimals = ("Avg", 2) if c is None else (str(c), 1)
        row = [name] + [
            "" if means[col][key] is None else f"{means[col][key]:.{decimals}f}" for col in columns
        ]
        if several:
            row += ["" if ci95[col][key] is None else f"{ci95[col][key]:.{decimals}f}" for col in columns]
        writer.writerow(row)
    return buf.getvalue()


def per_seed_csv(per_seed: dict, seeds: dict[str, list[int]], classes: tuple[str, ...]) -> str:
    """Long format, one row per (column, seed): every value behind the table's means."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["column", "seed", *classes, "Avg"])
    for col, cells in per_seed.items():
        for i, seed in enumerate(seeds[col]):
            writer.writerow(
                [
                    col,
                    seed,
                    *(
                        "" if v is None else f"{v:.4f}"
                        for v in (cells[str(c)][i] for c in range(len(classes)))
                    ),
                    "" if cells["Avg"][i] is None else f"{cells['Avg'][i]:.4f}",
                ]
            )
    return buf.getvalue()


def provenance_lines(config, result: dict) -> list[str]:
    """A report's lines on what produced it: the settings, the data's hashes, package versions
    and the engine version (its random streams)."""
    from kdlab.config import to_dict

    return [
        f"- Config: `{to_dict(config)}`",
        f"- Data: {config.dataset}, sha256 "
        + ", ".join(f"{k} {v[:12]}…" for k, v in result["data_sha256"].items()),
        f"- Versions: {result['versions']}, engine {result.get('engine', '?')}",
    ]
