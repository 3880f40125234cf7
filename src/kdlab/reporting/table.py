"""The per-class accuracy table: one column per model, rows per class, then Avg."""

from __future__ import annotations

import csv
import io


def build_table(columns: list[str], num_classes: int, per_class: dict[str, list[float]]) -> dict:
    """{column: {"0": %, ..., "Avg": mean of the per-class %}} from per-class fractions."""
    table = {}
    for col in columns:
        cells = {str(c): 100.0 * per_class[col][c] for c in range(num_classes)}
        cells["Avg"] = sum(cells.values()) / num_classes
        table[col] = cells
    return table


def _rows(table: dict, columns: list[str], classes: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for c, name in enumerate(classes):
        rows.append([name] + [f"{table[col][str(c)]:.1f}" for col in columns])
    rows.append(["Avg"] + [f"{table[col]['Avg']:.2f}" for col in columns])
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table whose columns line up in a terminal too."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"


def table_markdown(table: dict, columns: list[str], classes: tuple[str, ...]) -> str:
    return markdown(["Class", *columns], _rows(table, columns, classes))


def table_csv(table: dict, columns: list[str], classes: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Class", *columns])
    writer.writerows(_rows(table, columns, classes))
    return buf.getvalue()


def overall_markdown(overall: dict, columns: list[str]) -> str:
    rows = [
        ["Overall accuracy (%)"] + [f"{100 * overall[c]['accuracy']:.2f}" for c in columns],
        ["Test errors"] + [str(overall[c]["errors"]) for c in columns],
    ]
    return markdown(["", *columns], rows)
