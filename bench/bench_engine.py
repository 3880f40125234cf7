"""Benchmark the batched engine: K students trained together, the teacher, bf16 and compile.

Prints per-model and aggregate training throughput for K = 1, 2, 4, 8, 16 students
(784-300-300-10, batch 64 by default) and for the teacher (784-1200-1200-10), next to the
FLOP lower bound from the measured fp32 matmul throughput; then the step time of one
student group under bf16 autocast and under torch.compile, with the accuracy each reaches.
All ratios come from one run on one machine.

    python bench/bench_engine.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from machine import matmul_gflops, training_flops_per_sample

from kdlab.config import RunOptions
from kdlab.data.datasets import load_dataset
from kdlab.protocols.common import setup_torch
from kdlab.training.engine import TrainSpec, predict, score, train_group

STUDENT = (784, 300, 300, 10)
TEACHER = (784, 1200, 1200, 10)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def specs(sizes: tuple[int, ...], k: int, batch: int) -> list[TrainSpec]:
    return [
        TrainSpec(sizes, 0.5, 1, batch, 1e-3, 0.9 if i % 2 else 0.0, 4.0, True, i, 100 + i) for i in range(k)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=12800, help="training samples per model and size")
    args = parser.parse_args()
    setup_torch(RunOptions())
    data = load_dataset("mnist", args.data_dir, quiet=True)
    x, y = data.x_train, data.y_train
    teacher_logits = torch.randn(len(x), 10)
    rows = torch.arange(args.samples)
    x_val, y_val = data.x_test[:256], data.y_test[:256]
    peak = matmul_gflops()
    print(f"fp32 matmul throughput (2048x2048, {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s")
    print(f"batch {args.batch_size}, {args.samples} samples per model, dropout 0.5, Adam\n")
    print("| models | K | samples/s per model | samples/s, all models | vs K=1 | FLOP bound ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    base = None
    cases = [("student", STUDENT, k) for k in (1, 2, 4, 8, 16)] + [("teacher", TEACHER, 1)]
    for name, sizes, k in cases:
        group = specs(sizes, k, args.batch_size)
        seconds = _timed(lambda g=group: train_group(g, x, y, rows, teacher_logits, x_val, y_val, 10))
        aggregate = k * len(rows) / seconds
        bound = training_flops_per_sample(sizes) * k * len(rows) / (peak * 1e9)
        if name == "student" and k == 1:
            base = aggregate
        ratio = f"{aggregate / base:.2f}x" if name == "student" else "-"
        print(f"| {name} | {k} | {aggregate / k:,.0f} | {aggregate:,.0f} | {ratio} | {seconds / bound:.2f} |")

    print("\nstudent group of 8, one epoch on 60,000 images, then test accuracy:\n")
    print("| variant | seconds | test accuracy (mean of 8) |")
    print("|---|---:|---:|")
    full = torch.arange(len(x))
    for variant in ("fp32", "bf16 autocast", "torch.compile"):
        group = specs(STUDENT, 8, args.batch_size)
        try:
            seconds, acc = _variant(variant, group, x, y, full, teacher_logits, data)
            print(f"| {variant} | {seconds:.1f} | {100 * acc:.2f}% |")
        except Exception as e:  # report a variant that does not run here instead of hiding it
            print(f"| {variant} | failed: {type(e).__name__}: {str(e).splitlines()[0][:80]} | |")


def _variant(variant, group, x, y, rows, teacher_logits, data):
    def run():
        return train_group(group, x, y, rows, teacher_logits, data.x_test, data.y_test, 10)

    if variant == "bf16 autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            start = time.perf_counter()
            model, _ = run()
    elif variant == "torch.compile":
        import kdlab.training.engine as engine

        original = engine.kd_loss
        engine.kd_loss = torch.compile(original)
        try:
            start = time.perf_counter()
            model, _ = run()
        finally:
            engine.kd_loss = original
    else:
        start = time.perf_counter()
        model, _ = run()
    seconds = time.perf_counter() - start
    acc = score(predict(model, data.x_test), data.y_test, 10).accuracy.mean()
    return seconds, float(acc)


if __name__ == "__main__":
    main()
