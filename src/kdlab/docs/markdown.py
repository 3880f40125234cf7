"""Just enough Markdown for the docs checks: tables, headings and their anchors, links.

Fenced code blocks are not Markdown here: a table, heading or link inside one is text.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^\s*```")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
# a cell that is a number: 98.1, -12, +3.53 ± 1.71, 1,248.5, 136–144, 62.9%, 2.45×
NUMBER = re.compile(r"[~+\-−]?\d[\d,.]*(\s*(±|–)\s*\d[\d,.]*)?\s*(%|s|min|×|x)?")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(index, line) of every line outside fenced code blocks."""
    out, fenced = [], False
    for i, line in enumerate(text.splitlines()):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((i, line))
    return out


def plain(title: str) -> str:
    """A heading's text as it reads: links as their text, no code or emphasis marks."""
    return re.sub(r"[`*]", "", re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title))


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", plain(title).lower()).replace(" ", "-")


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every heading."""
    return [(i, len(m[1]), m[2]) for i, line in prose_lines(text) if (m := HEADING.match(line))]


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for _, _, title in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text: str) -> list[str]:
    """The targets of every link and image, code spans left out."""
    return [t for _, line in prose_lines(text) for t in LINK.findall(CODE_SPAN.sub("", line))]


def is_local(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # no scheme (http:, mailto:, ...)


def section(text: str, anchor: str) -> str:
    """The text under the heading with `anchor`, up to the next heading (of any level); a
    missing anchor is a `KeyError`."""
    lines = text.splitlines()
    found = headings(text)
    for k, (i, _, title) in enumerate(found):
        if slug(title) == anchor:
            end = found[k + 1][0] if k + 1 < len(found) else len(lines)
            return "\n".join(lines[i + 1 : end]).strip("\n") + "\n"
    raise KeyError(anchor)


def rebase(text: str, source_dir: Path, page_dir: Path) -> str:
    """`text` from a file in `source_dir` with its relative links made relative to `page_dir`."""

    def move(m: re.Match) -> str:
        target = m[1]
        if not is_local(target) or target.startswith(("#", "/")):
            return m[0]
        moved = Path(os.path.relpath(source_dir / target, page_dir)).as_posix()
        return m[0].replace(f"({target}", f"({moved}", 1)

    moved = "\n".join(line if i is None else LINK.sub(move, line) for i, line in _marked(text))
    return moved + ("\n" if text.endswith("\n") else "")


def demote(text: str, level: int) -> str:
    """`text` with its headings moved down so that the highest becomes `level` + 1: included
    sections sit under the page's own heading."""
    found = headings(text)
    if not found:
        return text
    shift = max(0, level + 1 - min(lv for _, lv, _ in found))
    lines = text.splitlines()
    for i, lv, title in found:
        lines[i] = "#" * min(6, lv + shift) + " " + title
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def _marked(text: str) -> list[tuple[int | None, str]]:
    """Each line with its index, or None inside fenced code (left as it is)."""
    prose = dict(prose_lines(text))
    return [(i if i in prose else None, line) for i, line in enumerate(text.splitlines())]


@dataclass(frozen=True)
class Table:
    first: int  # line index of the header
    last: int  # line index of the last row
    header: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> int:
        return self.header.index(name)


def cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def tables(text: str) -> list[Table]:
    """Every pipe table: a header line, a separator line, then rows starting with |."""
    lines = dict(prose_lines(text))
    out = []
    for i in sorted(lines):
        line, below = lines[i], lines.get(i + 1, "")
        if (
            line.lstrip().startswith("|")
            and SEPARATOR.match(below)
            and (i - 1 not in lines or not _row(lines[i - 1]))
        ):
            end = i + 1
            while _row(lines.get(end + 1, "")):
                end += 1
            out.append(Table(i, end, cells(line), [cells(lines[j]) for j in range(i + 2, end + 1)]))
    return out


def _row(line: str) -> bool:
    return line.lstrip().startswith("|")


def is_number(cell: str) -> bool:
    return NUMBER.fullmatch(re.sub(r"[`*]", "", cell).strip()) is not None


def is_number_table(table: Table) -> bool:
    """A table holding a measured number in any cell of its body."""
    return any(is_number(c) for row in table.rows for c in row)


def lookup(text: str, row: str, column: str) -> str:
    """The cell in the row whose first cell is `row` (or ends with what follows a leading `*`,
    for rows whose label holds a measured value) and the column headed `column`, in the first
    table that has both; a `KeyError` otherwise."""

    def named(first: str) -> bool:
        return first.endswith(row[1:]) if row.startswith("*") else first == row

    for table in tables(text):
        if column in table.header:
            for r in table.rows:
                if r and named(r[0]):
                    return r[table.column(column)]
    raise KeyError(f"{row}|{column}")
