"""The README documents every option of every command, and its quick start stays two commands."""

import re
from pathlib import Path

from kdlab.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _options() -> set[str]:
    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices["run"]
    protocols = next(a for a in run._subparsers._group_actions if a.dest == "protocol").choices
    commands = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices
    found = set()
    for sub in [*protocols.values(), commands["sweep"], commands["tune"]]:
        for action in sub._actions:
            found.update(s for s in action.option_strings if s.startswith("--") and s != "--help")
    return found


def test_readme_documents_every_option():
    text = README.read_text()
    documented = set(re.findall(r"`(--[a-z0-9-]+)", text))
    missing = {o for o in _options() if o not in documented and not o.startswith("--no-")}
    assert not missing, f"README lacks {sorted(missing)}"


def test_quick_start_is_two_commands():
    text = README.read_text()
    block = text.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip() and not line.startswith("#")]
    assert commands == ["make run", "make test"]
