"""End to end on the real MNIST at a reduced budget: every artefact, reuse, resume, determinism."""

import csv
import json
import shutil

import pytest
from helpers import budget, results_of, run, run_once

from kdlab.result import per_seed_metrics

COLUMNS = ["Teacher", "Norm", "KD", "Norm No3", "KD No3", "Norm No3+B", "KD No3+B"]
SMALL = budget(2, 3000)


first_run = run_once("first_run", "mythical-digit", *SMALL)


@pytest.mark.slow
def test_artefacts_are_complete_and_well_formed(first_run):
    out, results = first_run
    table = results["table"]
    assert list(table) == COLUMNS
    for col in COLUMNS:
        assert list(table[col]) == [str(c) for c in range(10)] + ["Avg"]
        assert table[col]["Avg"] == pytest.approx(sum(table[col][str(c)] for c in range(10)) / 10)
        errors, half_width = results["overall"][col]["errors"]
        accuracy = results["overall"][col]["accuracy"][0]
        assert errors == round(100 * (100 - accuracy)) and half_width is None  # 10,000 images; one seed
    assert results["config"]["omit"] == ["3"]
    # the experiment's effect, at this budget (2 epochs, 3000 images):
    assert results["overall"]["Teacher"]["accuracy"][0] > 80  # clearly above chance (10%)
    assert table["Norm No3"]["3"] == 0.0  # never saw a 3, never predicts one without the bias
    assert table["Norm No3+B"]["3"] == 0.0  # nor with it: it learned nothing about 3s
    assert table["KD No3+B"]["3"] > table["KD No3"]["3"] + 30  # the bias brings out the 3s ...
    assert table["KD No3+B"]["3"] > table["Norm No3+B"]["3"] + 50  # ... that only KD learned
    assert results["seeds"] == [0] and results["ci95"]["KD"]["3"] is None
    assert results["per_seed"]["KD"]["3"] == [results["table"]["KD"]["3"]]
    assert {c["metric"] for c in results["comparisons"]} >= {"overall accuracy", "accuracy on class 3"}
    md = (out / "table.md").read_text()
    assert md.startswith("| Class | Teacher |") and "| Avg " in md and "Test errors" in md
    rows = list(csv.reader((out / "table.csv").open()))
    assert rows[0] == ["Class", *COLUMNS] and len(rows) == 12
    report = (out / "report.md").read_text()
    assert "figures/per_class_accuracy.png" in report and "figures/learning_curves.png" in report
    assert "## Findings" in report and "overfitting" in report
    for png in ("learning_curves.png", "per_class_accuracy.png"):
        assert (out / "figures" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("Teacher", "Norm", "KD", "Norm No3", "KD No3"):
        folder = out / results["models"][name][0]["folder"]
        record = json.loads((folder / "record.json").read_text())
        assert record["seed"] == 0 and record["config"]["epochs"] == 2
        assert set(record["data_sha256"]) == {
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        }
        assert record["versions"]["torch"] and len(record["history"]) == 2
        assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(record["history"][0])
        assert record["group_wall_time_s"] > 0
        assert (folder / "weights.safetensors").stat().st_size > 0
    assert not list(out.rglob("*.tmp")) and not list((out / "models").glob(".*"))


@pytest.mark.slow
def test_rerun_reuses_resumes_and_reproduces(first_run, shared_data, tmp_path):
    out, results = first_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    # an interrupted run: the No3 students never finished
    for name in ("Norm No3", "KD No3"):
        shutil.rmtree(copy / results["models"][name][0]["folder"])
    resumed = results_of("mythical-digit", shared_data, copy, *SMALL)
    reused = {name: info[0]["reused"] for name, info in resumed["models"].items()}
    assert reused == {"Teacher": True, "Norm": True, "KD": True, "Norm No3": False, "KD No3": False}
    assert resumed["table"] == results["table"]  # retrained models are bit-identical
    fresh = results_of("mythical-digit", shared_data, copy, "--fresh", *SMALL)
    assert not any(info[0]["reused"] for info in fresh["models"].values())
    assert fresh["table"] == results["table"]


@pytest.mark.slow
def test_options_change_the_experiment(first_run, shared_data, tmp_path):
    _, results = first_run
    out = tmp_path / "o"
    options = ("--omit", "3", "8", "--bias", "2", "--no-t2", "--seed", "1")
    other = results_of("mythical-digit", shared_data, out, *SMALL, *options)
    assert "KD No3,8+B" in other["table"] and other["table"]["Norm No3,8"]["8"] == 0.0
    assert other["config"]["t2"] is False and other["config"]["bias"] == 2.0
    assert other["table"]["Norm"] != results["table"]["Norm"]  # another seed
    # one definition of the accuracy on the omitted classes: pooled over their test images
    counts = {"3": 1010, "8": 974}  # MNIST's test images of each
    for col in ("KD No3,8", "Norm No3,8+B", "KD No3,8+B"):
        per_class = other["per_seed"][col]
        pooled = sum(per_class[c][0] * n for c, n in counts.items()) / sum(counts.values())
        assert other["overall"][col]["per_seed_omitted_accuracy"][0] == pytest.approx(pooled, abs=1e-9)
    metrics = per_seed_metrics(other)[0]
    assert metrics["kd_omitted_before"] == pytest.approx(
        other["overall"]["KD No3,8"]["per_seed_omitted_accuracy"][0], abs=1e-9
    )
    assert metrics["kd_omitted_after"] == pytest.approx(
        other["overall"]["KD No3,8+B"]["per_seed_omitted_accuracy"][0], abs=1e-9
    )


@pytest.mark.slow
def test_seeds_train_as_groups_and_match_separate_runs(shared_data, tmp_path):
    """Two seeds: cells get intervals; the group of four students per transfer set gives the
    same table as training every model alone (a memory budget too small for two models)."""
    grouped, alone = tmp_path / "grouped", tmp_path / "alone"
    a = results_of("mythical-digit", shared_data, grouped, *SMALL, "--seeds", "2")
    b = results_of("mythical-digit", shared_data, alone, *SMALL, "--seeds", "2", "--memory-mb", "1")
    assert a["seeds"] == [0, 1] and a["ci95"]["KD No3"]["Avg"] is not None
    assert len(a["per_seed"]["KD"]["3"]) == 2 and a["ci95"]["Teacher"]["3"] is None
    record = json.loads((grouped / a["models"]["KD No3"][1]["folder"] / "record.json").read_text())
    assert sorted(record["group"]) == ["KD No3", "KD No3", "Norm No3", "Norm No3"] and record["seed"] == 1
    record = json.loads((alone / b["models"]["KD No3"][1]["folder"] / "record.json").read_text())
    assert record["group"] == ["KD No3"]
    for col in COLUMNS:
        for row, value in a["table"][col].items():
            assert value == pytest.approx(b["table"][col][row], abs=0.15), (col, row)
    assert "over 2 seeds" in (grouped / "report.md").read_text()


@pytest.mark.slow
def test_every_calibration_strategy_end_to_end(first_run, shared_data, tmp_path):
    out = tmp_path / "cal"
    strategies = ["validation", "fixed", "oracle-test", "prior-matching"]
    results = results_of(
        "mythical-digit", shared_data, out, *SMALL, "--val-size", "2000", "--calibration", *strategies
    )
    for col in ("Norm No3", "KD No3"):
        assert list(results["calibration"][col]) == strategies
        assert results["calibration"][col]["fixed"]["shift"] == [3.5]
        oracle = results["calibration"][col]["oracle-test"]["overall"][0]
        for strategy in strategies:  # nothing beats the oracle on the test set it looked at
            assert results["calibration"][col][strategy]["overall"][0] <= oracle + 1e-9
    # the +B columns use the first strategy's shift
    kd_b = results["overall"]["KD No3+B"]["per_seed_accuracy"][0]
    assert kd_b == pytest.approx(results["calibration"]["KD No3"]["validation"]["overall"][0])
    assert (out / "figures" / "bias_sweep.png").stat().st_size > 0
    assert "## Calibration" in (out / "report.md").read_text()


@pytest.mark.slow
def test_shared_model_store_reuses_teacher_and_hard_label_students(shared_data, tmp_path):
    store = tmp_path / "store"
    common = ("--models-dir", str(store), *SMALL)
    results_of("mythical-digit", shared_data, tmp_path / "a", *common)
    b = results_of("mythical-digit", shared_data, tmp_path / "b", *common, "--no-t2", "--temperature", "2")
    reused = {name: info[0]["reused"] for name, info in b["models"].items()}
    # the soft-target settings do not touch the teacher or the hard-label students
    assert reused == {"Teacher": True, "Norm": True, "KD": False, "Norm No3": True, "KD No3": False}
    assert (tmp_path / "b" / b["models"]["Teacher"][0]["folder"] / "record.json").exists()


@pytest.mark.slow
def test_interrupted_run_resumes(shared_data, tmp_path, monkeypatch, capsys):
    """Ctrl-C while the students train: the teacher is kept, nothing is half-written, and the
    rerun trains only what had not finished."""
    import kdlab.protocols.common as common

    real = common.train_group
    calls = []

    def interrupt_second_group(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(common, "train_group", interrupt_second_group)
    out = tmp_path / "out"
    assert run("mythical-digit", shared_data, out, *SMALL) == 130
    assert "rerun reuses them" in capsys.readouterr().err
    assert not (out / "results.json").exists()
    assert [p.name.split("-")[0] for p in (out / "models").iterdir()] == ["teacher"]
    monkeypatch.setattr(common, "train_group", real)
    results = results_of("mythical-digit", shared_data, out, *SMALL)
    assert results["models"]["Teacher"][0]["reused"] and not results["models"]["KD"][0]["reused"]
    assert (out / "per_seed.csv").read_text().startswith("column,seed,0,1,")


@pytest.mark.slow
def test_fashion_mnist_with_a_named_class(shared_data, tmp_path):
    out = tmp_path / "fm"
    results = results_of(
        "mythical-digit", shared_data, out, "--dataset", "fashion-mnist", "--omit", "shirt", *SMALL
    )
    assert list(results["table"])[3:5] == ["Norm Noshirt", "KD Noshirt"]
    assert results["table"]["Norm Noshirt"]["6"] == 0.0  # shirt is class 6
    assert results["config"]["dataset"] == "fashion-mnist" and results["config"]["omit"] == ["shirt"]
    assert "| ankle-boot" in (out / "table.md").read_text()
