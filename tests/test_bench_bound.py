"""The matmul bound of bench/: the products a run computes, counted by shape, and the bound as
their FLOPs over each shape's rate."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bound
from bound import Matmul


def test_training_counts_the_forward_and_both_backward_products_of_every_step():
    products = bound.training((6, 5, 3), k=2, rows=10, batch=4, epochs=3)  # batches 4, 4, 2
    assert products[Matmul(2, 4, 6, 5)] == 6 and products[Matmul(2, 2, 6, 5)] == 3  # forward
    assert products[Matmul(2, 6, 4, 5)] == 6  # first layer: weight gradient, no input gradient
    assert Matmul(2, 4, 5, 6) not in products
    assert products[Matmul(2, 4, 3, 5)] == 6 and products[Matmul(2, 2, 3, 5)] == 3  # input gradient
    # 2 models x 30 samples x (forward + weight gradient on both layers, input gradient on one)
    assert sum(c * mm.flops for mm, c in products.items()) == 2 * 30 * 2 * (2 * 6 * 5 + 3 * 5 * 3)


def test_inference_is_the_forward_alone_in_chunks():
    products = bound.inference((6, 5, 3), k=1, rows=9, chunk=4, passes=2)
    assert products == {
        Matmul(1, 4, 6, 5): 4,
        Matmul(1, 1, 6, 5): 2,
        Matmul(1, 4, 5, 3): 4,
        Matmul(1, 1, 5, 3): 2,
    }


def test_the_bound_is_each_products_flops_over_its_own_rate():
    products = bound.training((6, 5, 3), k=1, rows=8, batch=4, epochs=1) + bound.inference((6, 5, 3), 1, 4, 4)
    measured = {mm: 1e9 * (1 + mm.m) for mm in products}  # any positive rates
    expected = sum(c * mm.flops / measured[mm] for mm, c in products.items())
    assert bound.bound_seconds(products, measured) == expected
    assert len(bound.report(products, measured, top=3)) == 2 + 3


def test_a_rate_is_measured_for_every_distinct_shape():
    shapes = [Matmul(1, 8, 8, 8), Matmul(2, 8, 8, 8), Matmul(1, 8, 8, 8)]
    measured = bound.rates(shapes, min_seconds=0.001)
    assert set(measured) == set(shapes) and all(r > 0 for r in measured.values())


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
