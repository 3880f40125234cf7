"""The paper's numbers protocol at the quick budget on the real MNIST: rows, artefacts, reuse."""

import json

import pytest
import torch
from helpers import mlp_by_hand, results_of, run_once
from safetensors.torch import load_file

from kdlab.data.datasets import load_dataset

QUICK = ["--budget", "quick", "--quiet", "--subset", "3000", "--sweep-temperatures", "1", "4", "20"]


quick_run = run_once("quick_run", "hinton2015", *QUICK)


@pytest.mark.slow
def test_every_paper_row_is_measured(quick_run):
    """Each measured row is present, in its unit, in a sensible range at the quick budget."""
    out, results = quick_run
    rows = {r["experiment"]: r for r in results["rows"]}
    errors = {  # 10,000 test images; at this budget every model is far above chance (9,000 errors)
        "teacher 784-1200-1200-10 (dropout, max-norm, 2-px jitter)": (67, 3000),
        "784-800-800-10, no regularisation, hard labels": (146, 3000),
        "784-800-800-10 distilled at T=20": (74, 3000),
        "same, transfer set without any 3": (206, 3000),
        "… of them on the 1010 test 3s": (133, 1010),
    }
    for name, (paper, most) in errors.items():
        row = rows[name]
        assert row["paper"] == paper and row["unit"] == "errors" and 0 < row["kdlab"] < most
        assert row["difference"] == row["kdlab"] - paper
    assert rows["… bias of 3 raised by +3.50 (paper)"]["unit"] == "errors"
    only78 = rows["transfer set holding only 7s and 8s"]
    assert only78["unit"] == "% error" and 50 < only78["kdlab"] < 100  # mostly 7s and 8s predicted
    assert [r["kdlab"] for r in results["rows"] if r["unit"] == "T"] == [
        results["sweep"][w]["temperature"][
            results["sweep"][w]["errors"].index(min(results["sweep"][w]["errors"]))
        ]
        for w in ("300", "30")
    ]
    assert results["sweep"]["30"]["temperature"] == [1.0, 4.0, 20.0]
    for name in ("table.md", "report.md", "figures/temperature_sweep.png", "figures/learning_curves.png"):
        assert (out / name).stat().st_size > 0
    assert results["config"]["budget"] == "quick" and results["versions"]["torch"]


@pytest.mark.slow
def test_bias_shifts_move_the_right_classes_the_right_way(quick_run, shared_data):
    """The rows' errors after a shift, recomputed by hand from the stored students: 7 and 8
    both lowered by the (negative) shift, 3 raised."""
    out, results = quick_run
    data = load_dataset("mnist", shared_data, download=False, quiet=True)
    rows = {r["experiment"]: r["kdlab"] for r in results["rows"]}

    def logits(name: str) -> torch.Tensor:
        (folder,) = (out / "models").glob(f"{name}-" + "?" * 16)  # the slug, then the 16-digit key
        return mlp_by_hand(load_file(folder / "weights.safetensors"), data.x_test)

    only78, no3 = logits("kd-7-8-only"), logits("kd-no3")
    for how, (shift,) in results["shifts"]["7,8"].items():
        assert shift < 0  # lowering 7 and 8 (the only classes the student saw) helps
        moved = only78.clone()
        moved[:, [7, 8]] += shift
        wrong = 100 * float((moved.argmax(1) != data.y_test).double().mean())
        assert rows[f"… biases of 7 and 8 moved by {shift:+.2f} ({how})"] == pytest.approx(wrong, abs=1e-9)
    for how, (shift,) in results["shifts"]["3"].items():
        moved = no3.clone()
        moved[:, 3] += shift
        wrong = moved.argmax(1) != data.y_test
        label = f"… bias of 3 raised by {shift:+.2f} ({how})"
        assert rows[label] == int(wrong.sum())
        assert rows[f"{label}: errors on 3s"] == int(wrong[data.y_test == 3].sum())
        if how == "prediction share":  # as many test images called 3 as the training labels' share
            share = float((data.y_train[: results["config"]["subset"]] == 3).double().mean())
            assert int((moved.argmax(1) == 3).sum()) == round(share * len(data.y_test))


@pytest.mark.slow
def test_the_best_shift_is_no_worse_than_the_papers(quick_run):
    _, results = quick_run
    by_how = {}
    for row in results["rows"]:
        if row["experiment"].startswith("… bias of 3 raised") and not row["experiment"].endswith("3s"):
            by_how[row["experiment"].split("(")[-1]] = row["kdlab"]
    assert by_how["best on test)"] <= by_how["paper)"]


@pytest.mark.slow
def test_a_rerun_reuses_every_model(quick_run, shared_data):
    out, first = quick_run
    again = results_of("hinton2015", shared_data, out, *QUICK)
    assert all(stage["reused"] for stage in again["stages"].values())
    assert [r["kdlab"] for r in again["rows"]] == [r["kdlab"] for r in first["rows"]]


def test_prior_matching_without_a_shift_is_reported_not_raised():
    import torch

    from kdlab import KdlabError
    from kdlab.evaluation import Calibration, shift

    teacher = torch.tensor([[0.0, 0.0, 0.0]]).repeat(4, 1)  # a third of the mass on class 2
    student = torch.tensor([[0.0, 0.0, -1000.0]]).repeat(4, 1)  # +100 never lifts class 2
    given, y = Calibration(teacher, 0.25), torch.zeros(4, dtype=torch.long)
    assert shift("prior-matching", (2,), (student, y), None, given) is None
    assert shift("prior-matching", (2,), (torch.zeros(4, 3), y), None, given) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(KdlabError, match="validation split"):  # only prior matching may find none
        shift("validation", (2,), (student, y), None, given)


@pytest.mark.slow
def test_student_seeds_reuse_the_first_and_report_mean_and_range(quick_run, shared_data, tmp_path):
    """--seeds 2: the first seed's students are the one-seed run's (reused), each 800-800 row
    is the mean of its two seeds with their min and max, the teacher and T-sweep rows one value."""
    out, first = quick_run
    models = ("--models-dir", str(out / "models"))
    two = results_of("hinton2015", shared_data, tmp_path / "s2", *models, *QUICK, "--seeds", "2")
    assert two["stages"]["teacher"]["reused"] and two["stages"]["sweep"]["reused"]
    assert not two["stages"]["no3"]["reused"]
    one = {r["experiment"]: r for r in first["rows"]}
    seeded = [r for r in two["rows"] if r["stage"] in ("students", "no3", "only78", "t2")]
    fixed = [r for r in seeded if "raised by" not in r["experiment"] and "moved by" not in r["experiment"]]
    assert len(fixed) >= 8
    for r in fixed:
        a, b = r["per_seed"]
        assert r["kdlab"] == pytest.approx((a + b) / 2) and r["min"] == min(a, b) and r["max"] == max(a, b)
        assert a == one[r["experiment"]]["kdlab"]  # seed 0 is the one-seed run's student
    assert all(len(r["per_seed"]) == 1 for r in two["rows"] if r["stage"] in ("teacher", "sweep"))
    assert all(len(v) == 2 for v in two["shifts"]["3"].values())
    assert "Seeds: min–max" in (tmp_path / "s2" / "table.md").read_text()


@pytest.mark.slow
def test_sweep_seeds_reuse_the_first_and_average_each_point(quick_run, shared_data, tmp_path):
    """--sweep-seeds 2: the first seed's T-sweep students are the one-seed run's (reused), each
    point is the mean of its two seeds, and the best T is read from those means."""
    out, first = quick_run
    models = ("--models-dir", str(out / "models"))
    two = results_of("hinton2015", shared_data, tmp_path / "t2", *models, *QUICK, "--sweep-seeds", "2")
    assert not two["stages"]["sweep"]["reused"]
    assert all(two["stages"][s]["reused"] for s in ("teacher", "students", "no3", "only78", "t2"))
    for width, entry in two["sweep"].items():
        one = first["sweep"][width]
        assert entry["seeds"] == [0, 1] and entry["hard_per_seed"][0] == one["hard"]
        assert [v[0] for v in entry["per_seed"]] == one["errors"]
        assert entry["errors"] == [pytest.approx((a + b) / 2) for a, b in entry["per_seed"]]
        best = entry["temperature"][entry["errors"].index(min(entry["errors"]))]
        assert rows_of(two)[f"{width}-unit students: best T, mean of 2 seeds"] == best
    assert "mean (min–max) over the students of seeds 0, 1" in (tmp_path / "t2" / "report.md").read_text()


@pytest.mark.slow
def test_the_sweep_students_take_their_own_alpha_and_jitter(quick_run, shared_data, tmp_path):
    """--sweep-alpha reaches the T-sweep's distilled students (their records), which see the
    stored images (no jitter) unlike the 800-800 students, and nothing else changes: every
    other stage is the one-seed run's, reused."""
    out, _ = quick_run
    models = ("--models-dir", str(out / "models"))
    options = ("--sweep-alpha", "0.5")
    again = results_of("hinton2015", shared_data, tmp_path / "a", *models, *QUICK, *options)
    assert all(again["stages"][s]["reused"] for s in ("teacher", "students", "no3", "only78", "t2"))

    def spec(name: str) -> dict:
        (info,) = again["models"][name]
        return json.loads((tmp_path / "a" / info["folder"] / "record.json").read_text())["spec"]

    for width in (300, 30):
        assert spec(f"Hard {width}")["alpha"] == 0 and spec(f"Hard {width}")["jitter"] == 0
        for t in (1, 4, 20):
            assert spec(f"KD {width} T={t}")["alpha"] == 0.5 and spec(f"KD {width} T={t}")["jitter"] == 0
    assert spec("KD")["jitter"] == 2  # the 800-800 students still see moved images
    moved = results_of("hinton2015", shared_data, tmp_path / "b", *models, *QUICK, "--sweep-jitter")
    (info,) = moved["models"]["KD 30 T=4"]
    assert json.loads((tmp_path / "b" / info["folder"] / "record.json").read_text())["spec"]["jitter"] == 2


def rows_of(results: dict) -> dict:
    return {r["experiment"]: r["kdlab"] for r in results["rows"]}


def test_the_sweep_table_averages_seeds_and_rows_read_the_mean():
    from kdlab.protocols.hinton2015 import _sweep_rows, _sweep_table

    index = [(30, None, 0), (30, 2.0, 0), (30, 8.0, 0), (30, None, 1), (30, 2.0, 1), (30, 8.0, 1)]
    table = _sweep_table(index, [300, 250, 240, 310, 270, 280])
    entry = table["30"]
    assert entry["hard"] == 305 and entry["errors"] == [260, 260]
    assert entry["per_seed"] == [[250, 270], [240, 280]]
    table = _sweep_table(index, [300, 250, 240, 310, 260, 280])  # 2: 255, 8: 260 on the mean
    rows = {r[0]: r[2] for r in _sweep_rows(table)}
    assert rows["30-unit students: best T, mean of 2 seeds"] == [2.0]  # seed 0 alone would say 8
    assert rows["30-unit students: errors over T ≥ 8 (min–max, mean of 2 seeds)"] == ["260–260"]
    one = _sweep_table(index[:3], [300, 250, 240])
    assert one["30"]["errors"] == [250, 240] and isinstance(one["30"]["hard"], int)
    assert {r[0]: r[2] for r in _sweep_rows(one)}["30-unit students: best T"] == [8.0]


@pytest.mark.slow
def test_recipe_table_lists_a_runs_rows_and_changed_settings(quick_run, tmp_path, capsys):
    from kdlab.reporting.recipes import main as recipes

    _, results = quick_run
    (tmp_path / "runs" / "quick").mkdir(parents=True)
    (tmp_path / "runs" / "quick" / "results.json").write_text(json.dumps(results))
    assert recipes([str(tmp_path / "runs")]) == 0
    (line,) = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| quick")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    rows = {r["experiment"]: r for r in results["rows"]}
    teacher = rows["teacher 784-1200-1200-10 (dropout, max-norm, 2-px jitter)"]["kdlab"]
    assert cells[2] == str(teacher)
    flags = cells[1].strip("`").split()  # in the order of the settings
    assert flags == ["--budget", "quick", "--sweep-temperatures", "1.0", "4.0", "20.0", "--subset", "3000"]


def test_the_teacher_table_follows_each_record_along_its_epochs():
    from kdlab.reporting.recipes import teacher_table

    def record(optimizer, accs):
        history = [{"epoch": e + 1, "val_acc": a} for e, a in enumerate(accs)]
        spec = {"optimizer": optimizer, "lr": 0.05, "epochs": len(accs)}
        return {"spec": spec, "identity": {"monitor": "test set"}, "history": history}

    b = record("adam", [0.98] * 10)
    b["engine"], b["identity"]["rows"] = 2, {"device": "cpu-avx512"}
    table = teacher_table({"a": record("sgd", [0.9] * 9 + [0.99] * 11), "b": b})
    head, _, a, b = table.splitlines()
    assert "epoch 10" in head and "epoch 20" in head and "epoch 30" not in head
    cells = [[c.strip() for c in line.split("|")] for line in (a, b)]
    assert cells[0][8:10] == ["1.00", "1.00"]  # error %, from its accuracy
    assert cells[1][8:10] == ["2.00", "–"]  # no epoch 20: a dash
    assert cells[0][5:7] == ["1", "–"]  # no engine field: engine 1; no device kind: a dash
    assert cells[1][5:7] == ["2", "cpu-avx512"]


@pytest.mark.slow
def test_jittered_students_learn_from_the_teachers_views(quick_run, shared_data, tmp_path):
    """--jitter-transfer: the teacher (reused) gives its soft targets on the moved images from
    views made once; the distilled students say so in their identity (a key of their own), the
    hard-label students, which do not move, are the run without it."""
    out, first = quick_run
    models = ("--models-dir", str(out / "models"))
    moved = results_of("hinton2015", shared_data, tmp_path / "jt", *models, *QUICK, "--jitter-transfer")
    assert moved["stages"]["teacher"]["reused"]
    records = {
        name: json.loads((tmp_path / "jt" / infos[0]["folder"] / "record.json").read_text())
        for name, infos in moved["models"].items()
    }
    assert (
        records["KD"]["identity"]["soft_targets"] == "consistent views"
        and records["KD"]["spec"]["jitter"] == 2
    )
    assert "soft_targets" not in records["Hard"]["identity"] and records["Hard"]["spec"]["jitter"] == 0
    assert (
        records["Hard"]["key"]
        == json.loads((out / first["models"]["Hard"][0]["folder"] / "record.json").read_text())["key"]
    )
    assert len(moved["rows"]) == len(first["rows"])  # every row, with its own shifts


def test_views_beyond_the_memory_budget_are_refused_before_training(shared_data, tmp_path, capsys):
    from kdlab.cli import main

    args = ["run", "hinton2015", "--data-dir", str(shared_data), "--out", str(tmp_path / "o"), *QUICK]
    assert main([*args, "--jitter-transfer", "--jitter", "12", "--memory-mb", "32"]) != 0
    err = capsys.readouterr().err
    assert "--jitter-transfer with --jitter 12" in err and "--memory-mb 32" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("record.json"))


@pytest.mark.parametrize("pixels", ["28", "40"])
def test_a_jitter_that_moves_the_images_out_of_their_frame_is_refused(pixels, shared_data, tmp_path, capsys):
    from kdlab.cli import main

    args = ["run", "hinton2015", "--data-dir", str(shared_data), "--out", str(tmp_path / "o"), *QUICK]
    assert main([*args, "--jitter", pixels]) != 0
    said = capsys.readouterr().err
    assert f"--jitter {pixels} moves the 28x28 images out of their frame: give at most 27" in said
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("record.json"))


def test_a_diverging_teacher_stops_with_one_line_and_stores_nothing(shared_data, tmp_path, capsys):
    from kdlab.cli import main

    args = ["run", "hinton2015", "--data-dir", str(shared_data), "--out", str(tmp_path / "o"), *QUICK]
    assert main([*args, "--teacher-lr", "1e9", "--max-norm", "0"]) != 0
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "Teacher: training diverged: the loss was" in said[0]
    assert "in epoch 1 (learning rate 1e+09)" in said[0] and "nothing of it was stored" in said[0]
    assert not [
        p
        for p in (tmp_path / "o").rglob("*")
        if p.name.endswith((".json", ".safetensors")) and "models" in p.parts
    ]
