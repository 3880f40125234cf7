"""The generated parts of the pages: the README's headline and protocol tables, the studies'
timing table, and each study's command, machine and wall time. Every number in them is read
from a file a run wrote; a file that is not there yet is a `Missing` output."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdlab.docs.markdown import is_number, lookup, tables
from kdlab.docs.studies import STAMP, Study, read_stamp
from kdlab.errors import KdlabError

CELL = re.compile(r"\{([^{}|]+)\|([^{}|]+)\|([^{}]+)\}")  # {file|row|column}
SINGLE = re.compile(r"[+\-−]?\d[\d,]*(\.\d+)?")  # one number (not a range such as 2.5–4)


class Missing(Exception):
    """An output a page shows that no run has written yet."""


@dataclass(frozen=True)
class Context:
    docs: Path
    studies: list[Study]
    data: dict[str, Any]  # the other tables of studies.toml

    def study_of(self, path: str) -> str | None:
        """The study whose output folder holds `path` (relative to docs/), if any."""
        owners = [s.name for s in self.studies if path == s.name or path.startswith(s.name + "/")]
        return max(owners, key=len) if owners else None

    def read(self, path: str) -> str:
        """A file under docs/: `Missing` if a study will write it, an error if none does."""
        file = self.docs / path
        if not file.is_file():
            study = self.study_of(path)
            if study is None:
                raise KdlabError(f"docs/{path} does not exist, and no study of docs/studies.toml writes it")
            raise Missing(f"missing output docs/{path}: run make reproduce STUDY={study}")
        return file.read_text()

    def fill(self, template: str) -> str:
        """`template` with each {file|row|column} replaced by that cell of the file's tables."""

        def cell(m: re.Match) -> str:
            try:
                return lookup(self.read(m[1]), m[2], m[3])
            except KeyError:
                raise KdlabError(f"docs/{m[1]} has no row {m[2]!r} with a column {m[3]!r}") from None

        return CELL.sub(cell, template)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, number columns aligned right, padded so the source reads as a table."""
    numeric = [all(is_number(r[i]) or r[i] == "–" for r in rows) for i in range(len(header))]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric))
            + " |"
        )

    rule = "|" + "|".join("-" * (w + 1) + (":" if n else "-") for w, n in zip(widths, numeric)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"


def headline(ctx: Context, page: Path) -> str:
    """The paper's rows (those with one number in its Paper column) of the hinton2015 table beside
    kdlab's, then the rows the [headline] table of studies.toml adds."""
    spec = ctx.data["headline"]
    names = ("Experiment", "Paper", "kdlab", "Unit")
    source = next((t for t in tables(ctx.read(spec["paper"])) if set(names) <= set(t.header)), None)
    if source is None:
        raise KdlabError(f"docs/{spec['paper']} has no table with the columns {', '.join(names)}")
    cols = [source.column(c) for c in names]
    rows = [[r[c] for c in cols] for r in source.rows if SINGLE.fullmatch(r[cols[1]])]
    rows += [
        [r["experiment"], str(r.get("paper", "–")), ctx.fill(r["kdlab"]), r["unit"]]
        for r in spec.get("rows", [])
    ]
    return table(["Experiment", "Paper", "kdlab", "Unit"], rows)


def protocols(ctx: Context, page: Path) -> str:
    """One row per protocol: the paper's section, the question, a headline number, its page."""
    rows = [
        [
            f"`{p['name']}`",
            p["section"],
            p["tests"],
            ctx.fill(p["headline"]),
            link(ctx, p["page"], page),
        ]
        for p in ctx.data["protocol"]
    ]
    return table(["Protocol", "Paper", "What it tests", "Headline", "Page"], rows)


def studies(ctx: Context, page: Path) -> str:
    """Every study of `make reproduce`: command, page, expected and last measured time."""
    rows = []
    for s in ctx.studies:
        stamp = read_stamp(ctx.docs / s.name)
        last = "not yet" if stamp is None else f"{stamp['wall_time_s'] / 60:.1f} min ({stamp['finished']})"
        rows.append([s.name, f"`{' '.join(s.command)}`", link(ctx, s.page, page), f"{s.minutes:g} min", last])
    rows.append(["all", "", "", f"{sum(s.minutes for s in ctx.studies):g} min", ""])
    return table(["Study", "Command", "Page", "Expected", "Last run"], rows)


def link(ctx: Context, target: str, page: Path) -> str:
    """A link from `page` to the docs page `target`."""
    return f"[{target}]({Path(os.path.relpath(ctx.docs / target, page.parent)).as_posix()})"


def run_facts(ctx: Context, page: Path, name: str) -> str:
    """The command, machine and wall time of the run that wrote docs/<name>/."""
    stamp = read_stamp(ctx.docs / name)
    if stamp is None:
        raise Missing(f"missing output docs/{name}/{STAMP}: run make reproduce STUDY={name}")
    m = stamp["machine"]
    took = stamp["wall_time_s"]
    return (
        f"`{stamp['command']}`\n\n"
        f"Written by `make reproduce STUDY={name}` on {stamp['finished']} in "
        + (f"{took:.0f} s" if took < 120 else f"{took / 60:.1f} min")
        + f" on {m['cpu']} ({m['cores']} cores{', ' + m['kernels'] if 'kernels' in m else ''}),"
        f" torch {m['torch']}, kdlab {stamp['kdlab']}"
        f" (engine {stamp['engine']}).\n"
    )


GENERATORS = {"headline": headline, "protocols": protocols, "studies": studies, "run": run_facts}
