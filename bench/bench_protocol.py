"""Benchmark the mythical-digit protocol against the machine's matmul throughput.

Prints, per trained group: wall time, samples/s per model, the FLOP lower bound of its
training (training FLOPs / measured fp32 matmul throughput) and the ratio of the two. All
numbers come from one run on this machine, so the ratios are comparable.

    python bench/bench_protocol.py --data-dir ../shared/data [--epochs 10] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from machine import matmul_gflops, training_flops_per_sample

from kdlab.config import RunOptions
from kdlab.protocols import mythical_digit
from kdlab.protocols.common import setup_torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=mythical_digit.MythicalDigitConfig.batch_size)
    parser.add_argument("--seeds", type=int, default=1, help="student seeds (the teacher is shared)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run here (default: a temp dir)")
    args = parser.parse_args()

    opts = RunOptions(data_dir=args.data_dir, quiet=True, fresh=True)
    setup_torch(opts)
    peak = matmul_gflops()
    config = mythical_digit.MythicalDigitConfig(
        epochs=args.epochs, batch_size=args.batch_size, seeds=args.seeds
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        start = time.perf_counter()
        mythical_digit.run(config, RunOptions(data_dir=args.data_dir, out=out, quiet=True, fresh=True))
        total = time.perf_counter() - start
        results = json.loads((out / "results.json").read_text())
        records = [
            json.loads((out / info["folder"] / "record.json").read_text())
            for infos in results["models"].values()
            for info in infos
        ]

    print(f"\nfp32 matmul throughput (2048x2048, {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s")
    print(f"batch size {args.batch_size}, {args.epochs} epochs, {args.seeds} student seed(s)\n")
    header = "| group | models | wall s | samples/s per model | lower bound s | ratio |"
    print(header)
    print("|---|---:|---:|---:|---:|---:|")
    seen, bound_total = set(), 0.0
    for record in records:
        group = tuple(record["group"])
        if (group, record["group_wall_time_s"]) in seen:
            continue
        seen.add((group, record["group_wall_time_s"]))
        samples = record["transfer_size"] * args.epochs
        flops = training_flops_per_sample(record["spec"]["sizes"]) * samples * len(group)
        bound = flops / (peak * 1e9)
        bound_total += bound
        wall = record["group_wall_time_s"]
        names = ", ".join(sorted(set(group)))
        print(
            f"| {names} | {len(group)} | {wall:.1f} | {samples / wall:,.0f} | "
            f"{bound:.1f} | {wall / bound:.2f} |"
        )
    print(
        f"\nwhole protocol (data, training, evaluation, report): {total:.1f} s; "
        f"training FLOP lower bound {bound_total:.1f} s (ratio {total / bound_total:.2f})"
    )


if __name__ == "__main__":
    main()
