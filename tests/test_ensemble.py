"""The ensemble protocol (the paper's section 4): the ensemble's soft targets, its two means, the
fraction of its gain a student recovers, the settings it refuses, and the quick budget end to
end on MNIST."""

from __future__ import annotations

import math
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import results_of, run

from kdlab import KdlabError
from kdlab.evaluation import ensemble_logits
from kdlab.models import build_model
from kdlab.protocols.ensemble import spec
from kdlab.reporting.ensemble import recovered
from kdlab.result import per_seed_metrics
from kdlab.settings.ensemble import EnsembleConfig
from kdlab.training.augment import all_shifts, move, translate
from kdlab.training.engine import EnsembleTargets, SoftTargets


def _members(m: int = 3, d: int = 6, c: int = 4):
    net = build_model("mlp", (d, 8, c), m, 0.0)
    net.reset_parameters([torch.Generator().manual_seed(s) for s in range(m)])
    x = torch.randn(20, d, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        logits = net(x.unsqueeze(0).expand(m, *x.shape))  # [M, N, C]
    return net, x, logits


def test_ensemble_targets_are_the_mean_of_the_members_probabilities_at_each_temperature():
    _, x, logits = _members()
    targets = EnsembleTargets(logits)
    rows = torch.tensor([[0, 3, 5], [7, 7, 1]])  # two students, each its own rows
    temperature = torch.tensor([1.0, 4.0])
    soft = targets.of(rows, x[rows], None, temperature)
    for k in range(2):
        t = temperature[k]
        expected = torch.softmax(logits[:, rows[k]] / t, -1).mean(0)
        assert torch.allclose(torch.softmax(soft[k] / t, -1), expected, atol=1e-6)
    # one member is that member: the same soft targets as the plain teacher's logits
    one = EnsembleTargets(logits[:1]).of(rows, x[rows], None, temperature)
    plain = SoftTargets(logits[0]).of(rows, x[rows], None, temperature)
    for k in range(2):
        t = temperature[k]
        assert torch.allclose(torch.softmax(one[k] / t, -1), torch.softmax(plain[k] / t, -1), atol=1e-6)


def test_consistent_targets_are_the_members_on_the_moved_image_itself():
    shape, m = (1, 4, 4), 3
    net = build_model("mlp", (16, 8, 5), m, 0.0)
    net.reset_parameters([torch.Generator().manual_seed(s) for s in range(m)])
    x = torch.randn(10, 16, generator=torch.Generator().manual_seed(3))
    on = lambda images: net(images.unsqueeze(0).expand(m, *images.shape))  # noqa: E731
    with torch.no_grad():
        views = torch.stack(
            [
                on(move(x.unsqueeze(0), shape, torch.tensor([dy, dx]).view(2, 1, 1).expand(2, 1, 10))[0])
                for dy, dx in all_shifts(1)
            ]
        )
        logits = on(x)
    rows = torch.tensor([[0, 4, 9], [2, 2, 5]])
    moved, shifts = translate(x[rows], shape, 1, [torch.Generator().manual_seed(s) for s in (5, 6)])
    t = torch.tensor([2.0, 3.0])
    consistent = EnsembleTargets(logits, views=views, position=torch.arange(10), max_shift=1).of(
        rows, moved, shifts, t
    )
    with torch.no_grad():
        for k in range(2):
            expected = torch.softmax(on(moved[k]) / t[k], -1).mean(0)
            assert torch.allclose(torch.softmax(consistent[k] / t[k], -1), expected, atol=1e-5)
    # without views a moved image gets the targets of the image it came from
    stored = EnsembleTargets(logits).of(rows, moved, shifts, t)
    assert torch.allclose(stored, EnsembleTargets(logits).of(rows, x[rows], None, t))
    assert bool(shifts.any()) and not torch.allclose(stored, consistent)


def test_the_arithmetic_and_geometric_means_of_an_ensemble():
    _, _, logits = _members()
    p = torch.softmax(logits, -1)
    arithmetic, geometric = (ensemble_logits(logits, [[0, 2]], mean) for mean in ("arithmetic", "geometric"))
    assert torch.allclose(arithmetic[0].exp(), p[[0, 2]].mean(0), atol=1e-6)
    g = p[[0, 2]].log().mean(0).exp()
    assert torch.allclose(geometric[0].exp(), g / g.sum(-1, keepdim=True), atol=1e-6)
    with pytest.raises(ValueError):
        ensemble_logits(logits, [[0]], "harmonic")


def test_the_recovered_fraction_and_its_bootstrap_interval():
    r = recovered([98.5, 98.7, 98.6], [98.0, 98.2, 98.1, 98.3], 99.0)
    assert r["fraction"] == pytest.approx((98.6 - 98.15) / (99.0 - 98.15))
    low, high = r["ci95"]
    assert low < r["fraction"] < high
    assert recovered([98.6], [98.0, 98.2], 99.0)["ci95"] is None  # one seed: no interval
    assert recovered([98.6, 98.7], [98.0, 99.2], 98.5)["fraction"] is None  # no gain to recover


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"members": 1}, "--members"),
        ({"alphas": (0.5, 1.0), "val_size": 100}, "too small to choose"),
        ({"jitter": 0, "student_jitter": "stored"}, "--student-jitter needs --jitter > 0"),
        ({"temperatures": (2.0, float("nan"))}, "--temperatures"),
        ({"alphas": (0.0,)}, "--alphas"),
        ({"student_jitter": "sometimes"}, "--student-jitter"),
    ],
)
def test_settings_that_make_no_sense_are_refused_in_one_line(settings, message):
    with pytest.raises(KdlabError, match=message) as error:
        EnsembleConfig(**settings)
    assert "\n" not in str(error.value)


def test_one_candidate_needs_no_validation_split():
    config = EnsembleConfig(temperatures=(4.0,), alphas=(1.0,), val_size=0, jitter=0, student_jitter="none")
    assert config.resolved("val_size") == 0


def test_a_hard_label_student_is_a_member_under_another_seed():
    """One recipe for members and students: the seeds, and a distilled student's soft-target
    term, are all that differ; the paper's unmoved transfer set drops the students' jitter."""
    lab = SimpleNamespace(data=SimpleNamespace(num_features=784, classes=list(range(10))))
    config = EnsembleConfig(hidden=(30,), student_hidden=(30,), dropout=0.3, input_dropout=0.1, max_norm=2.0)
    member = asdict(spec(lab, config, "member0", 0))
    differ = lambda other: {k for k, v in asdict(other).items() if member[k] != v}  # noqa: E731
    assert differ(spec(lab, config, "student", 0)) == {"init_seed", "stream_seed"}
    seeds = {"init_seed", "stream_seed"}
    assert differ(spec(lab, config, "student", 0, 0.5, 4.0)) == seeds | {"alpha", "temperature", "t2"}
    assert member["dropout"] == 0.3 and member["input_dropout"] == 0.1 and member["max_norm"] == 2.0
    unmoved = EnsembleConfig(hidden=(30,), student_hidden=(30,), student_jitter="none")
    assert asdict(spec(lab, unmoved, "student", 0))["jitter"] == 0
    assert asdict(spec(lab, unmoved, "member0", 0))["jitter"] == unmoved.jitter > 0


@pytest.mark.parametrize(
    "options, message",
    [
        (["--subset", "70000"], "larger than the training set"),
        (["--subset", "900", "--val-size", "900"], "leaves no training images"),
        (["--hidden", "20000", "20000", "--memory-mb", "64"], "needs about"),
        (
            ["--members", "40", "--subset", "0", "--memory-mb", "1000"],
            "consistent soft targets of 40 members",
        ),
    ],
)
def test_bad_runs_stop_before_anything_trains(shared_data, tmp_path, capsys, options, message):
    code = run(
        "ensemble",
        shared_data,
        tmp_path / "out",
        "--budget",
        "quick",
        "--models-dir",
        str(tmp_path / "m"),
        *options,
    )
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").rglob("*.safetensors"))


# the quick budget on the paper's transfer set (no jitter for the students): on 3,000 unmoved
# images a hard-label student overfits, and soft targets are the regulariser
QUICK = ("--budget", "quick", "--student-jitter", "none", "--quiet")


@pytest.mark.slow
def test_the_quick_budget_distils_the_ensemble_and_reuses_every_model(shared_data, tmp_path):
    out, store = tmp_path / "out", tmp_path / "models"
    results = results_of("ensemble", shared_data, out, *QUICK, "--models-dir", str(store))
    members, students = results["members"], results["students"]
    assert len(members["accuracy"]) == 10 and results["seeds"] == [0, 1, 2]
    # the ensemble beats its mean member, and the distilled student the hard-label one
    assert results["ensemble"]["arithmetic"] > members["summary"][0]
    assert results["comparisons"]["distilled - hard"]["mean_diff"] > 0
    # the interval of the recovered fraction holds its point estimate
    r = results["recovered"]["distilled"]
    assert r["ci95"][0] <= r["fraction"] <= r["ci95"][1]
    # T and alpha were chosen on the validation split: the chosen candidate is its best
    for choice in results["choices"].values():
        best = max(c["val_accuracy"] for c in choice["candidates"])
        assert choice["candidates"][choice["chosen"]]["val_accuracy"] == best
    # the per-seed metrics sweeps read
    metrics = per_seed_metrics(results)
    assert [m["distilled_accuracy"] for m in metrics] == students["distilled"]["accuracy"]
    gain = results["ensemble"]["arithmetic"] - sum(members["accuracy"]) / 10
    assert metrics[0]["recovered"] == pytest.approx(
        (students["distilled"]["accuracy"][0] - (results["ensemble"]["arithmetic"] - gain)) / gain
    )
    assert math.isfinite(metrics[0]["recovered"])
    for name in ("table.md", "table.csv", "report.md"):
        assert (out / name).read_text()
    assert (out / "figures" / "accuracy_by_ensemble_size.png").read_bytes()[:4] == b"\x89PNG"
    # a rerun reuses every model and gives the same numbers
    again = results_of(
        "ensemble",
        shared_data,
        tmp_path / "again",
        *QUICK,
        "--models-dir",
        str(store),
    )
    assert all(m["reused"] for models in again["models"].values() for m in models)
    # every candidate the validation split weighed is indexed: the chosen one among the students
    config = results["config"]
    grid = [f"T={t:g} alpha={a:g}" for t in config["temperatures"] for a in config["alphas"]]
    assert {n for n in results["models"] if " T=" in n} == {
        f"{teacher} {g}" for teacher in ("Distilled", "One member") for g in grid
    }
    assert again["students"] == students and again["members"] == members


def test_one_candidate_runs_without_a_validation_split(shared_data, tmp_path):
    tiny = ("--budget", "quick", "--members", "2", "--subset", "800", "--val-size", "0", "--hidden", "30")
    tiny += ("--member-epochs", "1", "--student-epochs", "1", "--temperatures", "4", "--alphas", "1")
    results = results_of("ensemble", shared_data, tmp_path / "out", *tiny, "--seeds", "1", "--quiet")
    assert results["split"] == {"train": 800, "val": 0}
    assert results["choices"]["distilled"]["candidates"][0]["val_accuracy"] is None
    assert "alpha = 1, as given" in results["findings"][1]
    assert results["recovered"]["distilled"]["ci95"] is None  # one seed: no interval


def test_colour_images_of_an_npz_take_the_cnn_family_with_consistent_students(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "colour.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (90, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(90) % 3,
        x_test=rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(30) % 3,
    )
    tiny = ("--budget", "quick", "--members", "2", "--subset", "0", "--val-size", "0", "--hidden", "4")
    tiny += ("--member-epochs", "1", "--student-epochs", "1", "--temperatures", "2", "--alphas", "1")
    results = results_of("ensemble", tmp_path, tmp_path / "out", "--dataset", str(path), *tiny, "--quiet")
    assert results["config"]["arch"] == "cnn" and results["config"]["student_jitter"] == "consistent"
    assert len(results["students"]["distilled"]["accuracy"]) == 3
