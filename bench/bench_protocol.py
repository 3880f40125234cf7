"""Benchmark the mythical-digit protocol against the machine's matmul throughput.

Prints, per trained group: wall time, samples/s per model, the FLOP lower bound of its
training (training FLOPs / measured fp32 matmul throughput) and the ratio of the two. All
numbers come from one run on this machine, so the ratios are comparable.

    python bench/bench_protocol.py --data-dir ../shared/data [--epochs 10] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import torch

from kdlab.config import RunOptions
from kdlab.protocols import mythical_digit
from kdlab.protocols.common import setup_torch


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Attainable fp32 matmul throughput: the best of several large square products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def training_flops_per_sample(sizes: list[int]) -> int:
    """Forward (2 MACs), weight gradient (2) and input gradient (2, none for the first layer)."""
    flops = 0
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        macs = fan_in * fan_out
        flops += (4 if i == 0 else 6) * macs
    return flops


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=mythical_digit.MythicalDigitConfig.batch_size)
    parser.add_argument("--out", type=Path, default=None, help="keep the run here (default: a temp dir)")
    args = parser.parse_args()

    opts = RunOptions(data_dir=args.data_dir, quiet=True, fresh=True)
    setup_torch(opts)
    peak = matmul_gflops()
    config = mythical_digit.MythicalDigitConfig(epochs=args.epochs, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        start = time.perf_counter()
        mythical_digit.run(config, RunOptions(data_dir=args.data_dir, out=out, quiet=True, fresh=True))
        total = time.perf_counter() - start
        results = json.loads((out / "results.json").read_text())
        records = {
            name: json.loads((out / info["folder"] / "record.json").read_text())
            for name, info in results["models"].items()
        }

    print(f"\nfp32 matmul throughput (2048x2048, {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s")
    print(f"batch size {args.batch_size}, {args.epochs} epochs\n")
    header = "| group | models | wall s | samples/s per model | lower bound s | ratio |"
    print(header)
    print("|---|---:|---:|---:|---:|---:|")
    seen, bound_total = set(), 0.0
    for record in records.values():
        group = tuple(record["group"])
        if group in seen:
            continue
        seen.add(group)
        samples = record["transfer_size"] * args.epochs
        flops = training_flops_per_sample(record["spec"]["sizes"]) * samples * len(group)
        bound = flops / (peak * 1e9)
        bound_total += bound
        wall = record["group_wall_time_s"]
        print(
            f"| {', '.join(group)} | {len(group)} | {wall:.1f} | {samples / wall:,.0f} | "
            f"{bound:.1f} | {wall / bound:.2f} |"
        )
    print(
        f"\nwhole protocol (data, training, evaluation, report): {total:.1f} s; "
        f"training FLOP lower bound {bound_total:.1f} s (ratio {total / bound_total:.2f})"
    )


if __name__ == "__main__":
    main()
