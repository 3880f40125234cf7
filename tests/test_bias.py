"""Bias injection, class resolution and the table."""

import csv
import io

import pytest
import torch

from kdlab import KdlabError
from kdlab.models import StackedMLP
from kdlab.protocols.study import shift_output_bias
from kdlab.reporting.findings import detect_overfitting
from kdlab.reporting.mythical_digit import Columns
from kdlab.reporting.table import per_seed_table, summarise, table_csv, table_markdown
from kdlab.settings.study import StudyConfig, resolve_classes, split_rows
from kdlab.training.engine import predict


def test_shift_output_bias_changes_only_the_omitted_logits():
    model = StackedMLP((6, 5, 4), 1)
    model.reset_parameters([torch.Generator().manual_seed(0)])
    state = model.state_of(0)
    shifted = shift_output_bias(state, (1, 3), 3.5)
    assert torch.equal(shifted["w0"], state["w0"]) and torch.equal(shifted["b0"], state["b0"])
    assert torch.equal(state["b1"], model.state_of(0)["b1"])  # the original is untouched
    x = torch.randn(7, 6)
    before = predict(StackedMLP.from_states((6, 5, 4), [state]), x)[0]
    after = predict(StackedMLP.from_states((6, 5, 4), [shifted]), x)[0]
    assert torch.allclose(after - before, torch.tensor([0.0, 3.5, 0.0, 3.5]).expand(7, 4))


def test_resolve_classes():
    classes = tuple(str(d) for d in range(10))
    assert resolve_classes(("3",), classes) == (3,)
    assert resolve_classes(("8", "3"), classes) == (3, 8)
    with pytest.raises(KdlabError, match=r"^--omit names class '3' twice \('3' and '3'\)$"):
        resolve_classes(("3", "8", "3"), classes, "--omit")
    with pytest.raises(KdlabError, match="unknown class '10'"):
        resolve_classes(("10",), classes)
    named = ("tee", "trouser", "pullover")
    assert resolve_classes(("trouser", "0"), named) == (0, 1)
    with pytest.raises(KdlabError, match=r"names class 'trouser' twice \('1' and 'trouser'\)"):
        resolve_classes(("1", "trouser"), named)
    with pytest.raises(KdlabError, match="unknown class 'shirt'"):
        resolve_classes(("shirt",), named)


def test_a_subset_larger_than_the_training_set_is_refused():
    assert len(split_rows(StudyConfig(subset=60000), 60000)[0]) == 60000
    with pytest.raises(
        KdlabError, match=r"^--subset 60001 is larger than the training set \(60000 images\)$"
    ):
        split_rows(StudyConfig(subset=60001), 60000)


def test_column_names():
    assert Columns.of(["3"]).all == [
        "Teacher",
        "Norm",
        "KD",
        "Norm No3",
        "KD No3",
        "Norm No3+B",
        "KD No3+B",
    ]
    assert Columns.of(["3", "8"]).all[3] == "Norm No3,8"


def test_table_avg_is_mean_of_per_class_and_formats():
    cols = ["A", "B"]
    per_class = {"A": [[1.0, 0.5, 0.25]], "B": [[0.9, 0.8, 0.7]]}
    means, ci95 = summarise(per_seed_table(cols, 3, per_class))
    assert means["A"]["Avg"] == pytest.approx(175 / 3)
    assert means["B"]["1"] == pytest.approx(80.0)
    assert ci95["A"]["Avg"] is None  # one seed: no interval
    md = table_markdown(means, ci95, cols, ("0", "1", "2"))
    assert md.splitlines()[0].split("|")[1].strip() == "Class"
    cells = [line.split("|")[2].strip() for line in md.splitlines()[2:]]
    assert cells == ["100.0", "50.0", "25.0", "58.33"]
    rows = list(csv.reader(io.StringIO(table_csv(means, ci95, cols, ("0", "1", "2")))))
    assert rows[0] == ["Class", "A", "B"] and rows[-1] == ["Avg", "58.33", "80.00"]
    assert rows[1] == ["0", "100.0", "90.0"]


def test_table_with_seeds_shows_intervals():
    cols = ["A"]
    per_class = {"A": [[1.0, 0.5], [0.8, 0.5], [0.9, 0.5]]}
    per_seed = per_seed_table(cols, 2, per_class)
    assert per_seed["A"]["0"] == pytest.approx([100.0, 80.0, 90.0])
    means, ci95 = summarise(per_seed)
    assert means["A"]["0"] == pytest.approx(90.0)
    # sd 10, n 3: t(0.975, 2) = 4.302653 → half-width 4.302653 * 10 / sqrt(3)
    assert ci95["A"]["0"] == pytest.approx(4.302653 * 10 / 3**0.5, rel=1e-6)
    assert ci95["A"]["1"] == 0.0
    md = table_markdown(means, ci95, cols, ("0", "1"))
    assert "90.0 ± 24.8" in md and "50.0 ± 0.0" in md
    rows = list(csv.reader(io.StringIO(table_csv(means, ci95, cols, ("0", "1")))))
    assert rows[0] == ["Class", "A", "A ci95"] and rows[1] == ["0", "90.0", "24.8"]


def test_detect_overfitting():
    def hist(train, val):
        return [{"epoch": i + 1, "train_loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val))]

    rising = hist([1.0, 0.5, 0.3, 0.2], [0.50, 0.40, 0.45, 0.52])
    assert "epoch 2" in detect_overfitting(rising)
    assert detect_overfitting(hist([1.0, 0.5, 0.3], [0.5, 0.4, 0.35])) is None
    assert detect_overfitting(hist([1.0, 0.5, 0.3], [0.5, 0.4, 0.401])) is None  # within tolerance


def test_omitted_classes_are_named_in_words():
    from kdlab.reporting.findings import class_phrase

    assert class_phrase(["3"]) == "class 3"
    assert class_phrase(["3", "8"]) == "classes 3 and 8"
    assert class_phrase(["3", "5", "8"]) == "classes 3, 5 and 8"


def test_a_class_without_test_images_has_no_data_not_zero():
    import math

    import torch

    from kdlab.reporting.table import per_seed_table, summarise, table_markdown
    from kdlab.training.engine import score

    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 3.0, 0.0]]])  # predicts 0, 1, 1
    result = score(logits, torch.tensor([0, 1, 0]), 3)
    assert result.per_class[0, :2].tolist() == [0.5, 1.0] and math.isnan(float(result.per_class[0, 2]))
    per_seed = per_seed_table(["M"], 3, {"M": [[0.5, 1.0, None]]})
    assert per_seed["M"]["2"] == [None] and per_seed["M"]["Avg"] == [75.0]
    means, ci95 = summarise(per_seed)
    assert "| 2     | no data |" in table_markdown(means, ci95, ["M"], ("0", "1", "2"))
