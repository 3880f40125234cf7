"""The docs: every table of numbers comes from a file a run wrote, options.md is generated from
the settings, every link resolves, and the README stays a front page.

A block whose source no run has written yet is an expected failure that names the
`make reproduce STUDY=...` to run; once the file exists, the check is strict."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kdlab.cli import build_parser
from kdlab.docs.blocks import Block, blocks, broken_links, context, loose_tables, pages, render
from kdlab.docs.options import options_page
from kdlab.docs.tables import Missing

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = pages(ROOT)
BLOCKS = [b for page in PAGES for b in blocks(page)]


def _name(item: Path | Block) -> str:
    if isinstance(item, Block):
        return f"{item.page.relative_to(ROOT)}:{item.kind}:{item.source}"
    return str(item.relative_to(ROOT))


@pytest.fixture(scope="module")
def ctx():
    return context(ROOT)


@pytest.mark.parametrize("block", BLOCKS, ids=_name)
def test_block_matches_the_file_a_run_wrote(block, ctx, request):
    try:
        expected = render(block, ctx)
    except Missing as e:
        request.applymarker(pytest.mark.xfail(reason=str(e), strict=False))
        raise
    assert block.body == expected, f"{block} differs from its source: run kdlab docs (make docs)"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_no_hand_typed_table_of_numbers(page):
    assert not loose_tables(page)


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_link_resolves(page, ctx, request):
    broken, missing = broken_links(page, ctx)
    assert not broken
    if missing:
        request.applymarker(pytest.mark.xfail(reason="; ".join(missing), strict=False))
        raise AssertionError("; ".join(missing))


def test_options_page_is_generated_from_the_settings():
    page = ROOT / "docs" / "options.md"
    assert page.read_text() == options_page(), "docs/options.md is out of date: run kdlab docs (make docs)"


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _cli_options() -> set[str]:
    """Every option of every command and subcommand of `kdlab`."""
    found = {s for p in _parsers(build_parser()) for a in p._actions for s in a.option_strings}
    return {s for s in found if s.startswith("--")} - {"--help", "--version"}


def test_options_page_lists_every_option_of_every_command():
    text = (ROOT / "docs" / "options.md").read_text()
    assert not {o for o in _cli_options() if f"`{o}`" not in text}


def test_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    linked = {p.name for p in PAGES[1:] if f"(docs/{p.name})" in text}
    assert linked == {p.name for p in PAGES[1:]}, "the README links to every docs page"


def test_quick_start_is_two_commands():
    text = README.read_text()
    block = text.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip() and not line.startswith("#")]
    assert commands == ["make run", "make test"]
