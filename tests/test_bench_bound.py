"""The matmul bound of bench/: the products a run computes, counted by shape, and the bound as
their FLOPs over each shape's rate."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bound
from bound import Matmul


def test_training_counts_the_forward_and_both_backward_products_of_every_step():
    products = bound.training((6, 5, 3), k=2, rows=85, batch=32, epochs=3)  # batches 32, 32, 16
    assert products[Matmul(2, 32, 6, 5)] == 6 and products[Matmul(2, 16, 6, 5)] == 3  # forward
    assert Matmul(2, 21, 6, 5) not in products  # the last batch is cut to a multiple of 16 rows
    assert products[Matmul(2, 6, 32, 5, "a")] == 6  # first layer: weight gradient, no input gradient
    assert Matmul(2, 32, 5, 6, "b") not in products
    assert products[Matmul(2, 32, 3, 5, "b")] == 6 and products[Matmul(2, 16, 3, 5, "b")] == 3
    # 2 models x 240 samples x (forward + weight gradient on both layers, input gradient on one)
    assert sum(c * mm.flops for mm, c in products.items()) == 2 * 240 * 2 * (2 * 6 * 5 + 3 * 5 * 3)


def test_inference_is_the_forward_alone_in_chunks():
    products = bound.inference((6, 5, 3), k=1, rows=9, chunk=4, passes=2)
    assert products == {
        Matmul(1, 4, 6, 5): 4,
        Matmul(1, 1, 6, 5): 2,
        Matmul(1, 4, 5, 3): 4,
        Matmul(1, 1, 5, 3): 2,
    }


def test_the_bound_is_each_products_flops_over_its_own_rate():
    products = bound.training((6, 5, 3), k=1, rows=32, batch=16, epochs=1)  # 2 steps
    fast = {mm: 1e9 for mm in products}
    # per step: forward 2*16*(30+15) FLOPs, weight gradients the same, one input gradient 2*16*15
    assert bound.bound_seconds(products, fast) == pytest.approx(2 * (2 * 2 * 16 * 45 + 2 * 16 * 15) / 1e9)
    slow_forward = {mm: 1e9 if mm.transposed else 0.5e9 for mm in products}  # the forward twice as slow
    assert bound.bound_seconds(products, slow_forward) == pytest.approx(
        2 * (2 * 2 * 16 * 45 + 2 * 16 * 15 + 2 * 16 * 45) / 1e9
    )
    rows = bound.report(products, slow_forward, top=3)[2:]
    assert len(rows) == 3 and "[16, 6] @ [6, 5] (forward)" in rows[0]  # the largest share first


def test_a_rate_is_measured_for_every_distinct_shape():
    shapes = [
        Matmul(1, 8, 8, 8),
        Matmul(2, 8, 8, 8),
        Matmul(1, 8, 8, 8),
        Matmul(1, 8, 4, 8, "a"),
        Matmul(1, 8, 4, 8, "b"),
    ]
    measured = bound.rates(shapes, min_seconds=0.001)
    assert set(measured) == set(shapes) and all(r > 0 for r in measured.values())


def _record(name: str, sizes: tuple, rows: int, **identity) -> dict:
    spec = {"sizes": list(sizes), "jitter": identity.pop("jitter", 0), "batch_size": 32, "epochs": 1}
    return {"name": name, "spec": spec, "identity": identity, "transfer_size": rows}


def test_a_runs_products_add_a_test_pass_per_model_and_the_teachers_logits():
    teacher, student = _record("Teacher", (6, 5, 3), 100), _record("KD", (6, 4, 3), 100)
    products = {("Teacher",): Counter({Matmul(1, 32, 6, 5): 3})}
    whole = bound.run_products([teacher, student], products, test_rows=40)
    assert whole[Matmul(1, 32, 6, 5)] == 3  # the groups' own products
    assert whole[Matmul(1, 40, 6, 4)] == 1  # the student's test pass
    assert whole[Matmul(1, 40, 6, 5)] == 1 and whole[Matmul(1, 100, 6, 5)] == 1  # the teacher's


def test_consistent_views_count_the_teachers_logits_under_every_shift():
    teacher = _record("Teacher", (6, 5, 3), 100)
    student = _record("KD", (6, 4, 3), 100, jitter=2, soft_targets="consistent views")
    whole = bound.run_products([teacher, student], {}, test_rows=40)
    assert whole[Matmul(1, 100, 6, 5)] == 25 and whole[Matmul(1, 100, 5, 3)] == 25  # (2·2 + 1)² views


@pytest.mark.slow
def test_the_protocol_benchmark_runs_and_prints_its_ratio_to_the_bound(shared_data, tmp_path):
    """A smoke run of bench/bench_protocol.py (its numbers are not read: a timing under a test
    is not a measurement), so that the benchmark keeps working with the code it measures."""
    import subprocess

    bench = Path(__file__).resolve().parents[1] / "bench"
    args = [sys.executable, "bench_protocol.py", "--data-dir", str(shared_data), "--epochs", "1"]
    args += ["--subset", "2000", "--out", str(tmp_path / "run")]
    done = subprocess.run(args, cwd=bench, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "its matmul bound" in done.stdout and "peak RSS" in done.stdout
    assert "| Teacher | 1 |" in done.stdout
    # the bound of the run just made, from its records
    args = [sys.executable, "bound_run.py", str(tmp_path / "run"), "--data-dir", str(shared_data)]
    done = subprocess.run(args, cwd=bench, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "5 models trained, 0 reused" in done.stdout and "whole run:" in done.stdout
    assert "| Teacher | 1 |" in done.stdout and "its matmul bound" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args, printed",
    [
        ("bench_engine.py", ["--samples", "512"], "| teacher | 1 |"),
        ("profile_step.py", ["--steps", "3", "--group", "teacher"], "| max-norm (sums of squares"),
        ("profile_step.py", ["--steps", "3", "--group", "small", "--models", "2", "--no-profile"], "ratio"),
        ("typical.py", ["--epochs", "1", "--subset", "2000"], "| KD No3 |"),
        ("compare.py", ["--against", "HEAD", "--repeats", "1", "--steps", "3"], "| teacher | 1 |"),
    ],
)
def test_each_benchmark_runs(shared_data, script, args, printed):
    """Smoke runs of the other benchmarks, for the same reason (nothing timed is read)."""
    import subprocess

    bench = Path(__file__).resolve().parents[1] / "bench"
    command = [sys.executable, script, "--data-dir", str(shared_data), *args]
    done = subprocess.run(command, cwd=bench, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert printed in done.stdout
