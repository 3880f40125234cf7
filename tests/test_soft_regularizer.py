"""Soft targets as regularisers: the samples, what reaches a student, the errors, and a
reduced-budget run on the real MNIST in which soft targets beat hard labels."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from kdlab import KdlabError
from kdlab.cli import main
from kdlab.data.datasets import load_dataset
from kdlab.protocols import soft_regularizer as sr
from kdlab.result import per_seed_metrics
from kdlab.settings.soft_regularizer import SoftRegularizerConfig, quotas, split_pool
from kdlab.training.store import ModelStore

TEACHER = ["--epochs", "2", "--subset", "6000", "--teacher-hidden", "300", "300", "--quiet"]
STUDENTS = ["--student-hidden", "100", "100", "--val-size", "500", "--steps", "150", "--max-epochs", "60"]


def _args(data, out, *extra):
    return [
        "run",
        "soft-regularizer",
        "--data-dir",
        str(data),
        "--out",
        str(out),
        *TEACHER,
        *STUDENTS,
        *extra,
    ]


def test_epoch_rule_keeps_the_steps_within_the_bounds():
    config = SoftRegularizerConfig(steps=800, min_epochs=4, max_epochs=150, batch_size=256)
    assert config.student_epochs(55_000) == 4  # 215 steps an epoch: the floor
    assert config.student_epochs(1_650) == 115  # 7 steps an epoch: ceil(800 / 7)
    assert config.student_epochs(275) == 150  # 2 steps an epoch: the cap


def test_samples_are_stratified_nested_per_seed_and_disjoint_from_validation(shared_data):
    y = load_dataset("mnist", shared_data, download=False, quiet=True).y_train
    pool, val = split_pool(torch.arange(len(y)), 1000, seed=0)
    assert len(val) == 1000 and len(torch.cat([pool, val]).unique()) == len(y)
    labels = y[pool]
    counts = torch.bincount(labels, minlength=10)
    samples = {}
    for seed in (0, 1):
        rank = sr.sample_order(pool, labels, 10, seed)
        for f in (0.5, 1, 3, 100):
            quota = quotas(labels, 10, f)
            rows = sr.fraction_rows(pool, labels, rank, quota)
            assert torch.equal(torch.bincount(y[rows], minlength=10), torch.round(counts * f / 100).long())
            assert not torch.isin(rows, val).any()
            samples[seed, f] = rows
    for seed in (0, 1):
        for small, large in ((0.5, 1), (1, 3), (3, 100)):
            assert torch.isin(samples[seed, small], samples[seed, large]).all()
    assert torch.equal(samples[0, 100], pool)
    assert torch.isin(samples[0, 3], samples[1, 3]).float().mean() < 0.2  # each seed its own sample


def test_a_fraction_leaving_a_class_empty_is_an_error():
    with pytest.raises(KdlabError, match="leaves a class without images"):
        quotas(torch.tensor([0] * 500 + [1] * 10), 2, 1.0)


@pytest.mark.slow
def test_no_image_outside_its_fraction_reaches_a_student(shared_data, tmp_path, monkeypatch):
    """Every training image outside the student's sample and the validation split is NaN (pixels
    and teacher logits): one gradient step on any of them would make the student's weights NaN."""
    opened = sr.open_study

    def poisoned(lab, config):
        study = opened(lab, config)
        y = study.data.y_train
        pool, val = split_pool(study.rows.cpu(), config.val_size, config.seed)
        rank = sr.sample_order(pool, y[pool], 10, config.student_seeds()[0])
        rows = sr.fraction_rows(pool, y[pool], rank, quotas(y[pool], 10, config.fractions[0]))
        outside = torch.ones(len(y), dtype=torch.bool)
        outside[torch.cat([rows, val])] = False
        x = study.lab.x.clone()
        x[outside] = float("nan")
        logits = study.teacher_logits.clone()
        logits[outside] = float("nan")
        return replace(study, lab=replace(study.lab, x=x), tutor=replace(study.tutor, logits=logits))

    monkeypatch.setattr(sr, "open_study", poisoned)
    out = tmp_path / "poison"
    assert main(_args(shared_data, out, "--fractions", "2", "--seeds", "1")) == 0
    results = json.loads((out / "results.json").read_text())
    for method in results["rows"][0]["methods"].values():
        assert method["accuracy"][0] > 50
    store = ModelStore(out / "models")
    students = [d for d in store.root.iterdir() if not d.name.startswith("teacher")]
    assert len(students) == 2
    for folder in students:
        record = json.loads((folder / "record.json").read_text())
        state = store.load(record["name"], record["key"]).state
        assert all(torch.isfinite(t).all() for t in state.values())
        assert record["transfer_size"] == results["rows"][0]["images"]


@pytest.mark.slow
def test_soft_targets_beat_hard_labels_on_small_fractions(shared_data, tmp_path):
    out = tmp_path / "sr"
    args = _args(shared_data, out, "--fractions", "1", "2", "--seeds", "3")
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["fraction"] for r in results["rows"]] == [1.0, 2.0]
    for row in results["rows"]:
        soft, early, hard = (row["methods"][m]["accuracy"] for m in ("soft", "early", "hard"))
        assert sum(soft) / 3 > sum(early) / 3 + 2 and sum(soft) / 3 > sum(hard) / 3 + 2
        assert row["soft_minus_early"]["n"] == 3
        assert all(1 <= e <= row["epochs"] for e in row["methods"]["early"]["epoch"])
    for name in ("table.md", "table.csv", "report.md"):
        assert (out / name).read_text()
    for name in ("accuracy_by_fraction.png", "validation_curves.png"):
        assert (out / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    assert "needs the 100% fraction as its reference" in results["findings"][-2]
    # the sweep metrics are the smallest fraction's, per seed
    metrics = per_seed_metrics(results)
    assert [m["soft_val_accuracy"] for m in metrics] == results["rows"][0]["methods"]["soft"]["val_accuracy"]
    # a rerun reuses every model and gives the same numbers
    assert main(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert all(r["reused"] for r in again["rows"])
    assert [r["methods"] for r in again["rows"]] == [r["methods"] for r in results["rows"]]


@pytest.mark.slow
def test_the_python_api_runs_it_and_gives_its_table(shared_data, cache):
    import kdlab
    from kdlab.reporting.soft_regularizer import LABELS

    result = kdlab.run(
        "soft-regularizer",
        data_dir=shared_data,
        epochs=2,
        subset=6000,
        teacher_hidden=[300, 300],
        student_hidden=[100, 100],
        val_size=500,
        steps=150,
        fractions=[2],
        seeds=1,
    )
    assert list(result.table.index) == [2.0] and list(result.table.columns) == list(LABELS.values())
    soft = result.data["rows"][0]["summary"]["soft"]["accuracy"][0]
    assert result.table.loc[2.0, "Soft targets"] == soft
    assert set(result.figures) == {"accuracy_by_fraction", "validation_curves"}
    assert result.data["metrics"]["soft_accuracy"] == result.data["rows"][0]["methods"]["soft"]["accuracy"]
