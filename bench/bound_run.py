"""The matmul bound of a finished run: how close a study too long for a benchmark window (the
hinton2015 full budget: two hours) came to its own matmuls.

Reads the run's results.json and each trained model's record.json, counts the products every
group trained and evaluated and the run's logits (bench/bound.py), measures each shape's rate
here, and prints per group its wall time, bound and ratio, then the whole run's. The rates are
measured now, not during the run, so run this straight after the run, on the machine that made
it, with nothing else running; models the run reused from the store trained elsewhere and are
left out, and then the whole run's ratio is not printed.

    python bench/bound_run.py docs/hinton2015 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import bound
import torch
from machine import matmul_gflops

from kdlab.config import RunOptions
from kdlab.data.datasets import load_dataset
from kdlab.protocols.common import setup_torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="the run's output folder (its results.json)")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()

    setup_torch(RunOptions(data_dir=args.data_dir, quiet=True))
    peak = matmul_gflops()
    results, records = bound.trained_records(args.run)
    reused = sum(info["reused"] for infos in results["models"].values() for info in infos)
    if not records:
        raise SystemExit(f"{args.run}: the run reused all {reused} of its models: nothing to bound")
    data = load_dataset(results["config"]["dataset"], args.data_dir, quiet=True)
    groups, products, whole = bound.run_groups(records, data.y_test)
    measured = bound.rates(whole)

    print(f"fp32 matmul throughput (2048x2048, {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s")
    engine = records[0].get("engine", 1)
    print(f"{args.run}: {len(records)} models trained, {reused} reused, engine {engine}\n")
    print("\n".join(bound.group_table(groups, products, measured)))
    total, total_bound = results["wall_time_s"], bound.bound_seconds(whole, measured)
    if reused:
        print(f"\nwhole run: {total:.1f} s; no bound, as {reused} of its models were reused")
    else:
        ratio = total / total_bound
        print(f"\nwhole run: {total:.1f} s; its matmul bound {total_bound:.1f} s (ratio {ratio:.2f})")
    print("\n" + "\n".join(bound.report(whole, measured)))


if __name__ == "__main__":
    main()
