"""One validation mechanism for every settings class: types, NaN/inf and bounds give one line
naming the setting, from the command line, a config file, sweep and search files alike."""

from __future__ import annotations

import pytest

from kdlab import KdlabError
from kdlab.cli import main
from kdlab.config import RunOptions
from kdlab.protocols.hinton2015 import Hinton2015Config
from kdlab.protocols.mythical_digit import MythicalDigitConfig
from kdlab.sweep.options import RayOptions
from kdlab.sweep.tune import TuneSettings


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (MythicalDigitConfig, {"epochs": "ten"}, "--epochs must be an integer, not 'ten'"),
        (MythicalDigitConfig, {"epochs": 2.5}, "--epochs must be an integer, not 2.5"),
        (MythicalDigitConfig, {"t2": 1}, "--t2 must be true or false, not 1"),
        (MythicalDigitConfig, {"seeds": [1, "a"]}, "--seeds must be an integer"),
        (MythicalDigitConfig, {"seed_list": [1, "a"]}, "--seed-list must be a list of integers, not 'a'"),
        (MythicalDigitConfig, {"seed_list": [4, 4]}, "--seed-list must not repeat"),
        (MythicalDigitConfig, {"seeds": 3, "seed_list": [4, 5]}, "give a count (--seeds) or a list"),
        (MythicalDigitConfig, {"temperature": "4"}, "--temperature must be a number, not '4'"),
        (MythicalDigitConfig, {"bias": float("nan")}, "--bias must be a finite number, not nan"),
        (MythicalDigitConfig, {"bias": float("inf")}, "--bias must be a finite number, not inf"),
        (MythicalDigitConfig, {"lr": float("-inf")}, "--lr must be a finite number"),
        (MythicalDigitConfig, {"student_dropout": float("nan")}, "--student-dropout must be a finite"),
        (MythicalDigitConfig, {"teacher_hidden": [0]}, "--teacher-hidden must be >= 1, not 0"),
        (MythicalDigitConfig, {"calibration": []}, "--calibration needs at least 1 value"),
        (MythicalDigitConfig, {"omit": []}, "--omit needs at least 1 value"),
        (
            Hinton2015Config,
            {"sweep_temperatures": [4.0, float("nan")]},
            "--sweep-temperatures must be a finite",
        ),
        (Hinton2015Config, {"max_norm": float("inf")}, "--max-norm must be a finite number"),
        (Hinton2015Config, {"subset": -2}, "--subset must be >= -1, not -2"),
        (Hinton2015Config, {"alpha": 0.0}, "--alpha must be in (0, 1], not 0"),
        (RunOptions, {"threads": -1}, "--threads must be >= 0, not -1"),
        (RunOptions, {"memory_mb": "lots"}, "--memory-mb must be an integer"),
        (RayOptions, {"cpus_per_trial": float("nan")}, "--cpus-per-trial must be a finite number"),
        (TuneSettings, {"time_budget_s": float("inf")}, "--time-budget-s must be a finite number"),
        (TuneSettings, {"objective": "loss"}, "--objective must be one of"),
    ],
)
def test_bad_values_are_one_line_naming_the_setting(cls, values, message):
    with pytest.raises(KdlabError) as info:
        cls(**values)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_values_are_converted_where_meant():
    config = MythicalDigitConfig(temperature=2, omit=[3, 8], teacher_hidden=[30], seed_list=[4, 5])
    assert config.temperature == 2.0 and isinstance(config.temperature, float)
    assert config.omit == ("3", "8") and config.teacher_hidden == (30,)
    assert config.student_seeds() == [4, 5]
    assert MythicalDigitConfig(seed=2, seeds=3).student_seeds() == [2, 3, 4]
    assert MythicalDigitConfig(seeds=2, seed_list=[7, 9]).student_seeds() == [7, 9]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_on_the_command_line(value, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "mythical-digit", "--out", str(out), f"--bias={value}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kdlab: error: --bias must be a finite number") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('epochs = "ten"', "--epochs must be an integer, not 'ten'"),
        ("epochs = 2.5", "--epochs must be an integer, not 2.5"),
        ("t2 = 1", "--t2 must be true or false, not 1"),
        ('seeds = [1, "a"]', "--seeds must be an integer"),
        ("bias = nan", "--bias must be a finite number, not nan"),
        ("temperature = inf", "--temperature must be a finite number, not inf"),
    ],
)
def test_wrong_types_in_a_config_file(text, message, tmp_path, capsys):
    cfg, out = tmp_path / "study.toml", tmp_path / "out"
    cfg.write_text(text + "\n")
    assert main(["run", "mythical-digit", "--config", str(cfg), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"kdlab: error: {message}\n" or (message in err and err.count("\n") == 1)
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\nbias = [1.0, nan]", "--bias must be a finite number, not nan"),
        ("[base]\nepochs = 'ten'\n[grid]\nalpha = [0.5]", "--epochs must be an integer"),
        ("[grid]\nalpha = [0.5]\n[resources]\ncpus = 'a'", "--cpus-per-trial must be a number"),
        ("[grid]\nalpha = [0.5]\n[resources]\ncpus = inf", "--cpus-per-trial must be a finite number"),
    ],
)
def test_sweep_files(text, message, tmp_path, capsys):
    path, out = tmp_path / "s.toml", tmp_path / "out"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


SEARCH = "[base]\nval_size = 1000\ncalibration = ['validation']\n[space]\n"


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("temperature = { loguniform = [1, inf] }", "bounds must be finite numbers"),
        ("temperature = { uniform = [nan, 2] }", "bounds must be finite numbers"),
        ("temperature = { uniform = [1, 'a'] }", "bounds must be finite numbers"),
        ("temperature = { uniform = [3, 2] }", "needs low < high"),
        ("temperature = { choice = [1, nan, 4] }", "--temperature must be a finite number"),
        ("student_hidden = { choice = [[30], [0], [50]] }", "--student-hidden must be >= 1"),
    ],
)
def test_search_space_bounds(space, message, tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SEARCH + space)
    assert main(["tune", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
