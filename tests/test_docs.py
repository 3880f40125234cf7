"""The docs: options.md is generated from the settings and lists every option of every command,
and the README's quick start stays two commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdlab.cli import build_parser
from kdlab.docs.options import options_page

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


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


def test_quick_start_is_two_commands():
    text = README.read_text()
    block = text.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip() and not line.startswith("#")]
    assert commands == ["make run", "make test"]
