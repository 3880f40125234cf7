"""`kdlab reproduce`: the studies file, when outputs are current, the dry run and the list,
publishing a run's files without ever losing the old ones, and (slow) tiny studies end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdlab import KdlabError, __version__
from kdlab.cli import main
from kdlab.docs import reproduce as rep
from kdlab.docs.studies import STAMP, file_sha256, load_studies, select, staleness

BUDGET = "--epochs 1 --subset 2000 --batch-size 100 --teacher-hidden 300 300"
STUDIES = f"""
[[study]]
name = "md/a"
command = "run mythical-digit {BUDGET}"
minutes = 1
page = "md.md"

[[study]]
name = "md/b"
command = "run mythical-digit {BUDGET} --temperature 2"
minutes = 2
page = "md.md"
"""
PAGE = (
    "# md\n\n<!-- generated: run md/a -->\nnot yet\n<!-- end generated -->\n\n"
    "<!-- include: md/a/table.md -->\nnot yet\n<!-- end include -->\n"
)


@pytest.fixture
def root(tmp_path, monkeypatch, cache):
    """A repository root with a docs/ of two tiny studies and a page including one's table."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "studies.toml").write_text(STUDIES)
    (tmp_path / "docs" / "md.md").write_text(PAGE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def studies(root: Path):
    return load_studies(root / "docs" / "studies.toml")[0]


def fake_run(root: Path, name: str, files: dict[str, str]) -> Path:
    """docs/<name>/ as a successful run of that study would leave it."""
    (study,) = select(studies(root), name)
    work = root / "work" / name
    for f, text in files.items():
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        (work / f).write_text(text)
    stamp = {
        "study": name,
        "command": study.shown(),
        "finished": "2026-01-02",
        "wall_time_s": 1.0,
        "machine": {"cpu": "cpu", "cores": 1, "torch": "torch", "python": "python"},
        "settings_sha256": study.settings_sha256(),
        "defaults": study.defaults(),
        "kdlab": __version__,
        "engine": rep.engine_version(),
        "data_sha256": {},
        "files": {f: file_sha256(work / f) for f in files},
    }
    rep.publish(work, sorted(files), root / "docs" / name, stamp)
    return root / "docs" / name


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "x"\ncommand = "run mythical-digit"\nminutes = 1', "needs name, command, minutes, page"),
        ('name = "x"\ncommand = "ls -l"\nminutes = 1\npage = "p.md"', "must start with run, sweep, tune"),
        (
            'name = "x"\ncommand = "run mythical-digit --out x"\nminutes = 1\npage = "p.md"',
            "reproduce sets --out",
        ),
    ],
)
def test_a_malformed_study_is_a_one_line_error(tmp_path, entry, message):
    (tmp_path / "s.toml").write_text(f"[[study]]\n{entry}\n")
    with pytest.raises(KdlabError, match=message):
        load_studies(tmp_path / "s.toml")


def test_select_a_study_or_every_study_under_a_name(root):
    all_ = studies(root)
    assert [s.name for s in select(all_, "md/b")] == ["md/b"]
    assert [s.name for s in select(all_, "md")] == ["md/a", "md/b"]
    with pytest.raises(KdlabError, match="no study 'mx'; studies are md/a, md/b"):
        select(all_, "mx")


def test_outputs_are_current_until_code_settings_data_or_files_change(root, monkeypatch):
    a, b = studies(root)
    assert staleness(a, root / "docs") == "no output yet"
    folder = fake_run(root, "md/a", {"table.md": "| a |\n", "figures/x.png": "png"})
    assert staleness(a, root / "docs") is None
    assert staleness(b, root / "docs") == "no output yet"
    stamp = json.loads((folder / STAMP).read_text())

    def with_stamp(**changes):
        (folder / STAMP).write_text(json.dumps({**stamp, **changes}))
        return staleness(a, root / "docs")

    assert with_stamp(settings_sha256="0") == "its command, or a file it reads, changed"
    assert with_stamp(kdlab="0.0.1") == f"kdlab 0.0.1 → {__version__}"
    assert with_stamp(engine=-1) == f"engine -1 → {rep.engine_version()}"
    assert with_stamp(data_sha256={"mnist": {"train-images-idx3-ubyte": "0"}}).startswith("the mnist files")
    with_stamp()
    (folder / "table.md").write_text("| edited by hand |\n")
    assert staleness(a, root / "docs") == "table.md is missing or was changed since the run"
    (folder / STAMP).unlink()
    assert staleness(a, root / "docs") == f"no {STAMP} (not written by kdlab reproduce)"


def test_a_changed_default_of_the_protocol_makes_its_outputs_stale(root, monkeypatch):
    """The command did not change, but what it runs did: a default of its settings, or a table
    of the module that declares them (a budget, the widths)."""
    import dataclasses

    from kdlab.settings import mythical_digit
    from kdlab.settings import study as study_settings

    a, _ = studies(root)
    fake_run(root, "md/a", {"table.md": "| a |\n"})
    assert a.protocol() == "mythical-digit" and a.defaults()["fields"]["temperature"] == 4.0
    assert staleness(a, root / "docs") is None
    field = next(f for f in dataclasses.fields(mythical_digit.SETTINGS) if f.name == "temperature")
    monkeypatch.setattr(field, "default", 3.0)
    assert staleness(a, root / "docs") == "its protocol's defaults changed (temperature)"
    monkeypatch.setattr(field, "default", 4.0)
    assert staleness(a, root / "docs") is None
    monkeypatch.setattr(study_settings, "DEFAULT_WIDTHS", {"mlp": ((10,), (5,))})
    assert staleness(a, root / "docs") == "its protocol's defaults changed (DEFAULT_WIDTHS)"
    # a stamp written before the defaults were recorded is not judged on them
    stamp = json.loads((root / "docs" / "md/a" / STAMP).read_text())
    del stamp["defaults"]
    (root / "docs" / "md/a" / STAMP).write_text(json.dumps(stamp))
    assert staleness(a, root / "docs") is None


def test_outputs_are_current_only_on_the_device_kind_they_were_measured_on(root, monkeypatch):
    """One seed trains other weights with another instruction set's kernels: a study measured
    on cpu-avx2 is stale on a cpu-avx512 machine, and current again on its own kind."""
    from kdlab.docs import studies as studies_module

    (a, _) = studies(root)
    fake_run(root, "md/a", {"table.md": "| a |\n", "results.json": json.dumps({"device": "cpu-avx2"})})
    monkeypatch.setattr(studies_module, "this_device", lambda: "cpu-avx512")
    assert staleness(a, root / "docs") == "measured on cpu-avx2, this machine runs cpu-avx512"
    monkeypatch.setattr(studies_module, "this_device", lambda: "cpu-avx2")
    assert staleness(a, root / "docs") is None


def test_a_sweep_file_is_part_of_the_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        '[[study]]\nname = "x"\ncommand = "sweep grid.toml"\nminutes = 1\npage = "p.md"\n'
    )
    (tmp_path / "grid.toml").write_text("[grid]\ntemperature = [1, 2]\n")
    (study,) = load_studies(tmp_path / "s.toml")[0]
    before = study.settings_sha256()
    (tmp_path / "grid.toml").write_text("[grid]\ntemperature = [1, 4]\n")
    assert study.settings_sha256() != before
    assert study.publish == ("summary.md", "results.csv", "figures/*.png")


def test_publish_replaces_the_last_run_and_leaves_other_files(root):
    folder = fake_run(root, "md/a", {"table.md": "old\n", "figures/gone.png": "old"})
    (folder / "recipe.md").write_text("another page\n")
    fake_run(root, "md/a", {"table.md": "new\n", "report.md": "new\n"})
    kept = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert kept == ["recipe.md", "report.md", STAMP, "table.md"]
    assert (folder / "table.md").read_text() == "new\n"
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_a_failed_publish_puts_the_old_files_back(root, monkeypatch):
    folder = fake_run(root, "md/a", {"table.md": "old\n", "report.md": "old\n"})
    before = {p.name: p.read_text() for p in folder.iterdir()}
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 5:  # after the old files are set aside and one new file is in place
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(rep.os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        fake_run(root, "md/a", {"table.md": "new\n", "report.md": "new\n"})
    monkeypatch.setattr(rep.os, "replace", real)
    assert {p.name: p.read_text() for p in folder.iterdir()} == before


def test_dry_run_and_list_run_and_write_nothing(root, monkeypatch, capsys):
    fake_run(root, "md/a", {"table.md": "| a |\n"})
    monkeypatch.setattr(rep, "run_study", lambda *a: pytest.fail("a dry run ran a study"))
    before = sorted(str(p) for p in root.rglob("*"))
    assert main(["reproduce", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "2 studies, 1 to run, expected ~2 min",
        "[1/2] md/a: current, skipped",
        "[2/2] md/b: expected ~2 min (no output yet)",
    ]
    assert out[3].strip() == f"kdlab run mythical-digit {BUDGET} --temperature 2 --out docs/md/b"
    assert main(["reproduce", "--list", "--study", "md"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["md/a", "md/b"]
    assert lines[0].endswith("current") and lines[1].endswith("no output yet")
    assert sorted(str(p) for p in root.rglob("*")) == before


def test_reproduce_needs_the_repository_root(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--list"]) == 1
    assert "no docs/studies.toml here" in capsys.readouterr().err


def test_a_failing_study_leaves_its_old_outputs(root, capsys):
    """A command kdlab refuses (before any data is read) fails the study, not the others."""
    folder = fake_run(root, "md/a", {"table.md": "| a |\n"})
    old = fake_run(root, "md/b", {"table.md": "| old b |\n"})
    (root / "docs" / "studies.toml").write_text(STUDIES.replace("--temperature 2", "--epochs 0"))
    before = {p.name: p.read_text() for p in old.iterdir()}
    assert main(["reproduce", "--study", "md/b", "--quiet"]) == 1
    out = capsys.readouterr()
    assert "[1/1] md/b: failed: kdlab run exited with 1" in out.out and "1 studies failed: md/b" in out.err
    assert {p.name: p.read_text() for p in old.iterdir()} == before
    assert (folder / "table.md").exists()


@pytest.mark.slow
def test_reproduce_end_to_end(root, shared_data, capsys):
    """Two tiny studies run and publish; a second call skips them; a changed study reruns
    alone; a change that fails leaves its old outputs. The page's block is refreshed."""
    args = ["reproduce", "--data-dir", str(shared_data), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[1/2] md/a: done" in out and "[2/2] md/b: done" in out
    a, b = root / "docs" / "md" / "a", root / "docs" / "md" / "b"
    for folder in (a, b):
        assert {"table.md", "report.md", "results.json", STAMP} <= {p.name for p in folder.iterdir()}
        assert len(list((folder / "figures").glob("*.png"))) == 3
    stamp = json.loads((a / STAMP).read_text())
    assert stamp["data_sha256"]["mnist"] == json.loads((a / "results.json").read_text())["data_sha256"]
    page = (root / "docs" / "md.md").read_text()
    assert (a / "table.md").read_text() in page
    assert (
        f"`kdlab run mythical-digit {BUDGET} --out docs/md/a`\n\nWritten by `make reproduce STUDY=md/a`"
        in page
    )
    assert not (root / "cache" / "reproduce").exists() or not any((root / "cache" / "reproduce").iterdir())

    assert main(args) == 0
    assert "[1/2] md/a: current, skipped\n[2/2] md/b: current, skipped" in capsys.readouterr().out

    b_table = (b / "table.md").read_text()
    (root / "docs" / "studies.toml").write_text(STUDIES.replace("--temperature 2", "--temperature 3"))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "md/a: current, skipped" in out and "md/b: expected ~2 min (its command" in out
    assert (b / "table.md").read_text() != b_table
    b_files = {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()}

    (root / "docs" / "studies.toml").write_text(STUDIES.replace("--temperature 2", "--omit 42"))
    assert main(args) == 1
    assert {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()} == b_files


def test_stopping_reproduce_stops_the_study_it_runs(tmp_path):
    """A SIGTERM to reproduce ends the study's own process too, instead of leaving it to train
    on beside whatever runs next."""
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    parent = (
        "import sys; from kdlab.docs.reproduce import run_child; "
        f"sys.exit(run_child([sys.executable, '-c', {child!r}], None))"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        for _ in range(100):  # the child is reaped by its parent before that one exits
            os.kill(grandchild, 0)
            time.sleep(0.05)
