"""The whole documentation at once: refresh it, or list what is wrong with it."""

from __future__ import annotations

from pathlib import Path

from kdlab.docs import DOCS
from kdlab.docs.blocks import blocks, broken_links, context, loose_tables, pages, refresh, render
from kdlab.docs.options import options_page
from kdlab.docs.tables import Missing
from kdlab.io import atomic_write_text

OPTIONS = DOCS / "options.md"
REGENERATE = "kdlab docs"


def update(root: Path = Path(".")) -> list[str]:
    """Refresh every block and docs/options.md; what changed."""
    changed = refresh(root)
    page = options_page()
    path = root / OPTIONS
    if not path.is_file() or path.read_text() != page:
        atomic_write_text(path, page)
        changed.append(str(OPTIONS))
    return changed


def problems(root: Path = Path(".")) -> tuple[list[str], list[str]]:
    """(what is out of date or broken, which outputs are missing), changing nothing."""
    ctx = context(root)
    wrong, missing = [], []
    path = root / OPTIONS
    if not path.is_file() or path.read_text() != options_page():
        wrong.append(f"{OPTIONS} is out of date: run {REGENERATE}")
    for page in pages(root):
        for block in blocks(page):
            try:
                if render(block, ctx) != block.body:
                    wrong.append(f"{block} differs from its source: run {REGENERATE}")
            except Missing as e:
                missing.append(f"{block}: {e}")
        broken, absent = broken_links(page, ctx)
        wrong += loose_tables(page) + broken
        missing += absent
    return wrong, missing
