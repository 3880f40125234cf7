"""The machinery behind the docs checks, on small pages in a temporary folder: tables of numbers,
anchors, sections, links moved with an include, and refreshing blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdlab import KdlabError
from kdlab.docs.blocks import blocks, broken_links, context, loose_tables, refresh, render
from kdlab.docs.markdown import anchors, demote, is_number, is_number_table, rebase, section, slug, tables
from kdlab.docs.site import problems
from kdlab.docs.tables import Missing

TABLE = "| Class | KD |\n|-------|---:|\n| 3     | 62.9 ± 4.5 |\n"
STUDIES = """
[[study]]
name = "md/a"
command = "run mythical-digit --epochs 1"
minutes = 1
page = "page.md"

[headline]
paper = "paper/table.md"

[[headline.rows]]
experiment = "KD on 3s"
kdlab = "{md/a/table.md|3|KD}"
unit = "%"
"""


def site(root: Path, page: str, files: dict[str, str] | None = None) -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "studies.toml").write_text(STUDIES)
    for name, text in (files or {}).items():
        (root / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / name).write_text(text)
    (root / "docs" / "page.md").write_text(page)
    return root / "docs" / "page.md"


@pytest.mark.parametrize(
    ("cell", "number"),
    [
        ("98.1", True),
        ("+3.53 ± 1.71", True),
        ("1,248.5", True),
        ("136–144", True),
        ("62.9%", True),
        ("**12**", True),
        ("–", False),
        ("`--epochs N`", False),
        ("T × alpha", False),
        ("784-800-800-10", False),
        ("none", False),
    ],
)
def test_a_number_cell(cell, number):
    assert is_number(cell) is number


def test_tables_and_which_hold_numbers():
    text = (
        "intro\n\n"
        + TABLE
        + "\n| a | b |\n|---|---|\n| `fixed` | none |\n\n```\n| x | y |\n|---|---|\n| 1 | 2 |\n```\n"
    )
    found = tables(text)
    assert [t.header for t in found] == [["Class", "KD"], ["a", "b"]]  # not the one in code
    assert [is_number_table(t) for t in found] == [True, False]


def test_anchors_as_github_makes_them():
    text = "# The T² factor\n## Five seeds: how much single runs vary\n## Findings\n## Findings\n"
    text += "```\n# not a heading\n```\n"
    assert slug("Calibration of the omitted classes' bias") == "calibration-of-the-omitted-classes-bias"
    assert slug("The `[tune]` table of a search file") == "the-tune-table-of-a-search-file"
    assert anchors(text) == {
        "the-t²-factor",
        "five-seeds-how-much-single-runs-vary",
        "findings",
        "findings-1",
    }


def test_section_runs_to_the_next_heading():
    text = "# R\n\nintro\n\n## Findings\n\n- a\n- b\n\n## Calibration\n\nc\n"
    assert section(text, "findings") == "- a\n- b\n"
    with pytest.raises(KeyError):
        section(text, "nothing")


def test_included_links_and_headings_move_with_the_include():
    text = "![curve](figures/a.png) [web](https://x.org/a.png) [here](#top)\n"
    assert rebase(text, Path("docs/md/a"), Path("docs")) == (
        "![curve](md/a/figures/a.png) [web](https://x.org/a.png) [here](#top)\n"
    )
    assert demote("# Title\n\n## Part\n", 2) == "### Title\n\n#### Part\n"


def test_refresh_fills_blocks_and_leaves_missing_ones(tmp_path):
    page = site(
        tmp_path,
        "# Page\n\n<!-- include: md/a/table.md -->\nold\n<!-- end include -->\n\n"
        "<!-- include: md/a/report.md#findings -->\nkept until its run\n<!-- end include -->\n",
        {"md/a/table.md": TABLE},
    )
    assert refresh(tmp_path) == [f"{page}: include md/a/table.md"]
    text = page.read_text()
    assert f"<!-- include: md/a/table.md -->\n\n{TABLE}\n<!-- end include -->" in text
    assert "kept until its run" in text
    assert refresh(tmp_path) == []  # idempotent
    _, missing = problems(tmp_path)
    assert missing == [
        f"{page}: include md/a/report.md#findings: missing output docs/md/a/report.md: "
        "run make reproduce STUDY=md/a"
    ]


def test_a_table_of_numbers_outside_a_block_is_hand_typed(tmp_path):
    page = site(
        tmp_path,
        "# Page\n\n" + TABLE + "\n<!-- include: md/a/table.md -->\n\n" + TABLE + "\n<!-- end include -->\n",
    )
    assert len(loose_tables(page)) == 1 and ":3:" in loose_tables(page)[0]


def test_links_that_lead_nowhere(tmp_path):
    page = site(
        tmp_path,
        "# Page\n\n## Here\n\n[ok](#here) [bad](#there) [file](other.md#top) [gone](nowhere.md) "
        "[later](md/a/report.md) [web](https://example.org/x)\n",
        {"other.md": "# Top\n"},
    )
    broken, missing = broken_links(page, context(tmp_path))
    assert [b.split("link to ")[1].split(":")[0] for b in broken] == ["#there", "nowhere.md"]
    assert missing == [f"{page}: link to md/a/report.md: missing output: run make reproduce STUDY=md/a"]


def test_generated_headline_reads_the_runs_tables(tmp_path):
    paper = "| Experiment | Paper | kdlab | Unit |\n|---|---:|---:|---|\n"
    paper += "| teacher | 67 | 79 | errors |\n| best T | 2.5–4 | 2.5 | T |\n"
    page = site(tmp_path, "<!-- generated: headline -->\n<!-- end generated -->\n", {"paper/table.md": paper})
    ctx = context(tmp_path)
    (block,) = blocks(page)
    with pytest.raises(Missing, match="STUDY=md/a"):
        render(block, ctx)
    assert refresh(tmp_path) == []  # left as it is until the run
    (tmp_path / "docs" / "md" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "md" / "a" / "table.md").write_text(TABLE)
    refresh(tmp_path)
    text = page.read_text()
    assert "| teacher    |    67 |         79 | errors |" in text and "best T" not in text
    assert "| KD on 3s   |     – | 62.9 ± 4.5 | %      |" in text


def test_a_cell_that_is_not_there_is_an_error_not_a_missing_output(tmp_path):
    page = site(
        tmp_path,
        "<!-- generated: headline -->\n<!-- end generated -->\n",
        {
            "paper/table.md": "| Experiment | Paper | kdlab | Unit |\n|---|---:|---:|---|\n",
            "md/a/table.md": TABLE.replace("| 3 ", "| 4 "),
        },
    )
    with pytest.raises(KdlabError, match="no row '3'"):
        refresh(tmp_path)
    assert page.exists()


def test_an_include_no_study_writes_is_an_error(tmp_path):
    site(tmp_path, "<!-- include: nobody/table.md -->\n<!-- end include -->\n")
    with pytest.raises(KdlabError, match="no study"):
        refresh(tmp_path)


def test_a_runs_command_machine_and_wall_time_come_from_its_stamp(tmp_path):
    page = site(tmp_path, "<!-- generated: run md/a -->\nby hand\n<!-- end generated -->\n")
    assert refresh(tmp_path) == []  # no run yet: left as it is
    stamp = {
        "command": "kdlab run mythical-digit --epochs 1 --out docs/md/a",
        "finished": "2026-01-02",
        "wall_time_s": 45.2,
        "machine": {"cpu": "AMD EPYC", "cores": 2, "torch": "2.13.0+cpu", "python": "3.11.7"},
        "kdlab": "0.1.0",
        "engine": 1,
    }
    (tmp_path / "docs" / "md" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "md" / "a" / "reproduce.json").write_text(json.dumps(stamp))
    refresh(tmp_path)
    assert page.read_text() == (
        "<!-- generated: run md/a -->\n\n`kdlab run mythical-digit --epochs 1 --out docs/md/a`\n\n"
        "Written by `make reproduce STUDY=md/a` on 2026-01-02 in 45 s on AMD EPYC (2 cores), "
        "torch 2.13.0+cpu, kdlab 0.1.0 (engine 1).\n\n<!-- end generated -->\n"
    )


def test_a_cell_is_found_by_its_row_label_or_the_label_s_end():
    """A row whose label holds a measured value (a shift) is named by how its label ends."""
    from kdlab.docs.markdown import lookup

    text = "| Experiment | kdlab |\n|---|---:|\n| raised by +1.89 (prediction share) | 118 |\n| plain | 7 |\n"
    assert lookup(text, "plain", "kdlab") == "7"
    assert lookup(text, "*(prediction share)", "kdlab") == "118"
    for row in ("(prediction share)", "*(prior matching)"):
        with pytest.raises(KeyError):
            lookup(text, row, "kdlab")
