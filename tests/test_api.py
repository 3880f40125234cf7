"""The Python API: a run is a function call returning data; nothing written but the model store;
the command line gives the same numbers; the example notebook executes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import kdlab
from kdlab.cli import main

TINY = {"epochs": 1, "subset": 2000}
NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "mythical_digit.ipynb"


@pytest.fixture
def work(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder that must stay empty, beside a per-user cache of its own (`cache`)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.slow
def test_run_returns_data_writes_nothing_and_matches_the_cli(
    shared_data: Path, cache: Path, work: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    result = kdlab.run("mythical-digit", data_dir=shared_data, **TINY)
    assert capsys.readouterr().out == ""  # nothing printed unless asked
    assert not any(work.iterdir())  # nothing written to the working folder
    assert any((cache / "models").iterdir())  # the models went to the per-user store

    table = result.table
    assert list(table.columns) == ["Teacher", "Norm", "KD", "Norm No3", "KD No3", "Norm No3+B", "KD No3+B"]
    assert list(table.index) == [*(str(c) for c in range(10)), "Avg"]
    assert table.loc["3", "Norm No3"] == 0.0  # a student that never saw a 3 predicts none
    assert list(result.overall.columns) == ["accuracy (%)", "errors"]
    assert result.findings and all(isinstance(line, str) for line in result.findings)
    assert set(result.figures) == {"per_class_accuracy", "learning_curves", "bias_sweep"}
    assert len(result.models["KD No3"]) == 1 and "w0" in result.models["KD No3"][0].state

    out = tmp_path / "cli"
    cli = ["run", "mythical-digit", "--data-dir", str(shared_data), "--out", str(out), "--quiet"]
    assert main([*cli, "--epochs", "1", "--subset", "2000"]) == 0
    written = json.loads((out / "results.json").read_text())
    assert written["table"] == result.data["table"]  # the same numbers, to the last digit
    assert written["overall"] == json.loads(json.dumps(result.data["overall"]))
    assert (out / "report.md").read_text().count("## Findings") == 1

    saved = result.save(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        p.name for p in out.iterdir() if p.name != "models"
    )
    assert json.loads((saved / "results.json").read_text())["table"] == written["table"]


@pytest.mark.slow
def test_seeds_give_intervals_and_errors_are_kdlab_errors(shared_data: Path, work: Path) -> None:
    result = kdlab.run("mythical-digit", data_dir=shared_data, seeds=2, **TINY)
    assert result.table.columns.nlevels == 2
    assert result.table[("KD No3", "ci95")].notna().all()
    assert result.table[("Teacher", "ci95")].isna().all()  # one teacher: no interval
    with pytest.raises(kdlab.KdlabError, match="unknown setting 'bogus'"):
        kdlab.run("mythical-digit", bogus=1)
    with pytest.raises(kdlab.KdlabError, match="unknown protocol"):
        kdlab.run("no-such-protocol")


@pytest.mark.slow
def test_the_example_notebook_runs(shared_data: Path, work: Path) -> None:
    """The notebook, executed top to bottom at a reduced budget on the real data."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit it without outputs"
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    params.source = f"EPOCHS = 1\nSUBSET = 2000\nSEEDS = 2\nDATA_DIR = {str(shared_data)!r}\n"
    nbclient.NotebookClient(  # the kernel runs in the empty working folder, with the test's cache
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    ).execute(env=dict(os.environ))
    assert not any(work.iterdir())  # the notebook writes nothing where it runs
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the per-class bars, the learning curves, the bias sweep


def test_dataframes_hold_the_numbers_with_intervals_only_where_measured() -> None:
    from kdlab.reporting.frames import ci_frame, records_frame

    rows = {"0": "zero", "Avg": "Avg"}
    one = ci_frame({"A": {"0": 1.0, "Avg": 2.0}}, {"A": {"0": None, "Avg": None}}, rows)
    assert list(one.columns) == ["A"] and list(one.index) == ["zero", "Avg"] and one.loc["Avg", "A"] == 2.0
    both = ci_frame(
        {"A": {"0": 1.0, "Avg": 2.0}, "B": {"0": 3.0, "Avg": 4.0}},
        {"A": {"0": None, "Avg": None}, "B": {"0": 0.5, "Avg": 0.25}},
        rows,
    )
    assert list(both.columns) == [("A", "mean"), ("A", "ci95"), ("B", "mean"), ("B", "ci95")]
    assert both.loc["zero", ("B", "ci95")] == 0.5 and both[("A", "ci95")].isna().all()
    frame = records_frame([{"k": "x", "v": 1}, {"k": "y", "v": 2}], "k")
    assert frame.loc["y", "v"] == 2
