"""Benchmark the stacked engine: K students trained as one group, against K = 1.

Trains groups of K = 1, 2, 4, 8, 16 distilling students (784-300-300-10, the mythical-digit
students: dropout 0.5, Adam, T = 4, alpha 0.9, batch 256 by default) for one pass over
`--samples` images, and the teacher (784-1200-1200-10) alone, and prints per-model and
aggregate throughput, the aggregate gain of each group over K = 1 (what stacking buys), and
the ratio to the group's own matmul bound (bench/bound.py). With PYTHONPATH=<checkout>/src it
measures another checkout's engine. All ratios come from one run on one machine.

    python bench/bench_engine.py --data-dir ../shared/data [--batch-size 256] [--samples 30000]
"""

from __future__ import annotations

import time

import bound
import groups
import torch

from kdlab.models.stacked import StackedModule
from kdlab.protocols.common import ENGINE_VERSION
from kdlab.training.engine import Monitor, TrainSpec, train_group

STUDENT = (784, 300, 300, 10)
TEACHER = (784, 1200, 1200, 10)


def specs(sizes: tuple[int, ...], k: int, batch: int, alpha: float) -> list[TrainSpec]:
    """K models of one group, each with its own seeds."""
    return [
        TrainSpec(sizes, 0.5, 1, batch, 1e-3, alpha, 4.0, True, init_seed=i, stream_seed=100 + i)
        for i in range(k)
    ]


def main() -> None:
    parser = groups.parser(__doc__)
    parser.add_argument("--samples", type=int, default=30000, help="training images per model")
    args = parser.parse_args()
    data, train, teacher = groups.setup(args)
    rows = torch.arange(args.samples)
    monitor = Monitor(data.x_test[:256], data.y_test[:256])
    print(f"{torch.get_num_threads()} threads, batch {args.batch_size}, {args.samples:,} images per model")
    print(f"engine {ENGINE_VERSION}\n")
    print("| group | K | images/s per model | images/s, all | all models vs K = 1 | matmul bound ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    base = None
    cases = [("students", STUDENT, k, 0.9) for k in (1, 2, 4, 8, 16)] + [("teacher", TEACHER, 1, 0.0)]
    for name, sizes, k, alpha in cases:
        group = specs(sizes, k, args.batch_size, alpha)
        groups.warm_up(group, train, monitor, teacher)
        start = time.perf_counter()
        train_group(group, train, rows, monitor, teacher)
        seconds = time.perf_counter() - start
        products = bound.training(sizes, k, len(rows), args.batch_size, 1)
        products += bound.inference(sizes, k, len(monitor.y), StackedModule.eval_chunk)
        matmul = bound.bound_seconds(products, bound.rates(products))
        per_model = len(rows) / seconds
        base = per_model if (name, k) == ("students", 1) else base
        gain = f"{k * per_model / base:.2f}×" if name == "students" else "–"
        print(f"| {name} | {k} | {per_model:,.0f} | {k * per_model:,.0f} | {gain} | {seconds / matmul:.2f} |")


if __name__ == "__main__":
    main()
