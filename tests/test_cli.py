"""Bad input gets one clear line on stderr, a non-zero exit, and nothing written."""

import json
from pathlib import Path

import pytest
from helpers import budget, results_of, run

from kdlab.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [  # bad values one by one: tests/test_settings.py; here what needs the data or two settings
        (["--omit", "12"], "unknown class '12'"),
        (["--omit", "three"], "unknown class 'three'"),
        (["--omit", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], "removes every class"),
        (["--device", "tpu"], "--device must be"),
        (["--calibration", "validation"], "set --val-size > 0"),
        (["--seeds", "3", "--seed-list", "4", "5"], "give a count (--seeds) or a list (--seed-list)"),
    ],
)
def test_invalid_settings(args, message, shared_data, tmp_path, capsys):
    out = tmp_path / "out"
    code = run("mythical-digit", shared_data, out, "--quiet", *args)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert err.count("\n") == 1 and err.startswith("kdlab: error:")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["mythical-digit", "--subset", "5"],
            "the first 5 training images (--subset) hold no image of class(es) 2, 3, 6, 7, 8",
        ),
        (["every-digit", "--subset", "5"], "the first 5 training images (--subset) hold no image"),
        (["hinton2015", "--budget", "quick", "--subset", "5"], "hold no image of class(es) 2, 3, 6, 7, 8"),
        (["soft-regularizer", "--subset", "5"], "hold no image of class(es) 2, 3, 6, 7, 8"),
        (
            ["every-digit", "--subset", "2000", "--val-size", "59000", "--classes", "3"],
            "--subset 2000 is larger than the training set (1000 images after --val-size)",
        ),
        (
            ["mythical-digit", "--dataset", "fashion-mnist", "--omit", "0", "t-shirt"],
            "--omit names class 't-shirt' twice ('0' and 't-shirt')",
        ),
        (
            ["every-digit", "--dataset", "fashion-mnist", "--classes", "bag", "8"],
            "--classes names class 'bag' twice ('bag' and '8')",
        ),
        (["soft-regularizer", "--subset", "3000", "--val-size", "3000"], "val size 3000 leaves no training"),
        (
            ["soft-regularizer", "--subset", "3000", "--fractions", "0.1", "50"],
            "fraction 0.1% leaves a class without images",
        ),
    ],
)
def test_meaningless_combinations_are_refused_before_anything_trains(
    args, message, shared_data, tmp_path, capsys
):
    """Settings legal one by one that only the data show meaningless together: one line, and
    the output folder (and its model store) never made."""
    out = tmp_path / "out"
    protocol, *options = args
    code = run(protocol, shared_data, out, *options, "--quiet")
    err = capsys.readouterr().err
    assert code == 1 and message in err, err
    assert err.count("\n") == 1 and err.startswith("kdlab: error:")
    assert not out.exists()


def test_missing_data_folder(tmp_path, capsys):
    out = tmp_path / "out"
    code = run("mythical-digit", tmp_path / "nowhere", out)
    err = capsys.readouterr().err
    assert code != 0 and "does not exist" in err and err.count("\n") == 1
    assert not out.exists()


def test_unparseable_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "mythical-digit", "--epochs", "ten"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--epochs" in err


def test_out_folder_of_another_experiment(shared_data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "kdlab-run.json").write_text(json.dumps({"protocol": "every-digit", "dataset": "mnist"}))
    (out / "results.json").write_text("{}")
    code = run("mythical-digit", shared_data, out, "--quiet")
    err = capsys.readouterr().err
    assert code != 0 and "another experiment" in err
    assert sorted(p.name for p in out.iterdir()) == ["kdlab-run.json", "results.json"]
    assert (out / "results.json").read_text() == "{}"


def test_out_folder_with_foreign_files(shared_data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = run("mythical-digit", shared_data, out, "--quiet")
    assert code != 0 and "not a kdlab run" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_bad_config_file(tmp_path, capsys):
    cfg = tmp_path / "study.toml"
    cfg.write_text("epochs = [")
    assert main(["run", "mythical-digit", "--config", str(cfg)]) != 0
    assert "not valid TOML" in capsys.readouterr().err
    cfg.write_text("epochz = 3\n")
    assert main(["run", "mythical-digit", "--config", str(cfg)]) != 0
    assert "unknown setting 'epochz'" in capsys.readouterr().err


TINY = budget(1, 500, (20,), "--student-hidden", "10")


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_rerun_with_other_settings_into_the_same_out_is_refused(shared_data, tmp_path, capsys):
    """Results are data: other settings never replace a run's results; the same settings
    (run options aside) may rerun into the folder and reuse its models."""
    out = tmp_path / "out"
    assert run("mythical-digit", shared_data, out, *TINY) == 0
    before = _files(out)
    assert run("mythical-digit", shared_data, out, *TINY, "--temperature", "2", "--seeds", "2") == 1
    err = capsys.readouterr().err
    assert err.startswith("kdlab: error: output folder") and err.count("\n") == 1
    assert "seeds 1 → 2" in err and "temperature 4.0 → 2.0" in err and "--models-dir" in err
    assert _files(out) == before  # nothing written, nothing lost
    results = results_of("mythical-digit", shared_data, out, *TINY, "--threads", "1", "--memory-mb", "100")
    assert all(info[0]["reused"] for info in results["models"].values())
    assert results["table"] == json.loads(before[out / "results.json"])["table"]
    marker = json.loads((out / "kdlab-run.json").read_text())
    assert marker["settings"]["temperature"] == 4.0 and marker["settings"]["device"].startswith("cpu-")
