"""Benchmark the mythical-digit protocol against its own matmuls on this machine.

Prints, per trained group: wall time, samples/s per model, the lower bound of its training
(bench/bound.py: every forward and backward product of every step, and the evaluation after
each epoch, each at the rate its own shape attains here) and the ratio of the two; then the
whole run (with the teacher's logits on every training image and one test pass per model
added to the bound: the run makes more, which only lowers the bound), the
shapes the bound is made of, and the peak resident memory. All numbers come from one run on
this machine, so the ratios are comparable.

    python bench/bench_protocol.py --data-dir ../shared/data [--epochs 10] [--batch-size 128]
    python bench/bench_protocol.py --epochs 1 --subset 2000   # a smoke run (the tests' one)
    PYTHONPATH=<checkout>/src python bench/bench_protocol.py  # the engine of another checkout
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import bound
import torch
from machine import matmul_gflops

import kdlab
from kdlab.config import RunOptions
from kdlab.data.datasets import load_dataset
from kdlab.protocols import mythical_digit
from kdlab.protocols.common import ENGINE_VERSION, setup_torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=mythical_digit.MythicalDigitConfig.batch_size)
    parser.add_argument("--seeds", type=int, default=1, help="student seeds (the teacher is shared)")
    parser.add_argument("--subset", type=int, default=0, help="the first N training images (0: all)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run here (default: a temp dir)")
    args = parser.parse_args()

    opts = RunOptions(data_dir=args.data_dir, quiet=True, fresh=True)
    setup_torch(opts)
    peak = matmul_gflops()
    config = mythical_digit.MythicalDigitConfig(
        epochs=args.epochs, batch_size=args.batch_size, seeds=args.seeds, subset=args.subset
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        start = time.perf_counter()
        run = RunOptions(data_dir=args.data_dir, out=out, models_dir=out / "models", quiet=True, fresh=True)
        mythical_digit.PROTOCOL.run(config, run).save(out)
        total = time.perf_counter() - start
        records = bound.trained_records(out)[1]

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = load_dataset(config.dataset, args.data_dir, quiet=True)
    groups, products, whole = bound.run_groups(records, data.y_test)
    measured = bound.rates(whole)

    print(f"\nfp32 matmul throughput (2048x2048, {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s")
    print(f"batch size {args.batch_size}, {args.epochs} epochs, {args.seeds} student seed(s)")
    print(f"engine {ENGINE_VERSION} (kdlab at {source(Path(kdlab.__file__).parent)})\n")
    print("\n".join(bound.group_table(groups, products, measured)))
    total_bound = bound.bound_seconds(whole, measured)
    print(
        f"\nwhole protocol (data, training, evaluation, report): {total:.1f} s; its matmul bound "
        f"{total_bound:.1f} s (ratio {total / total_bound:.2f}); peak RSS {peak_rss_mb:,.0f} MB\n"
    )
    print("\n".join(bound.report(whole, measured)))


def source(package: Path) -> str:
    """Which kdlab ran: its checkout's tag or commit (a path says nothing to a reader); the path
    when it is not a checkout's own file (an installed copy, even inside a checkout's venv)."""
    git = ["git", "-C", str(package)]
    tracked = subprocess.run([*git, "ls-files", "--error-unmatch", "__init__.py"], capture_output=True)
    done = subprocess.run([*git, "describe", "--tags", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() if tracked.returncode == 0 and done.returncode == 0 else str(package)


if __name__ == "__main__":
    main()
