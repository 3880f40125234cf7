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
import json
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

import bound
import torch
from machine import matmul_gflops

import kdlab
from kdlab.config import RunOptions
from kdlab.data.datasets import load_dataset
from kdlab.models.stacked import StackedModule
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
        results = json.loads((out / "results.json").read_text())
        records = [
            json.loads((out / info["folder"] / "record.json").read_text())
            for infos in results["models"].values()
            for info in infos
        ]

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = load_dataset(config.dataset, args.data_dir, quiet=True)
    groups, whole = {}, Counter()
    for record in records:  # each group once
        groups.setdefault((tuple(record["group"]), record["group_wall_time_s"]), record)
    products = {key: group_products(record, len(key[0]), data.y_test) for key, record in groups.items()}
    for counted in products.values():
        whole += counted
    # at least one test pass per model, and each teacher's logits on every training image
    for record in records:
        whole += bound.inference(tuple(record["spec"]["sizes"]), 1, len(data.y_test), EVAL_CHUNK)
    for teacher in (r for r in records if r["name"] == "Teacher"):
        whole += bound.inference(tuple(teacher["spec"]["sizes"]), 1, len(data.y_train), EVAL_CHUNK)
    measured = bound.rates(whole)

    print(f"\nfp32 matmul throughput (2048x2048, {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s")
    print(f"batch size {args.batch_size}, {args.epochs} epochs, {args.seeds} student seed(s)")
    print(f"engine {ENGINE_VERSION} (kdlab from {Path(kdlab.__file__).parent})\n")
    print("| group | models | wall s | samples/s per model | matmul bound s | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for (group, wall), record in groups.items():
        samples = record["transfer_size"] * args.epochs
        seconds = bound.bound_seconds(products[(group, wall)], measured)
        names = ", ".join(sorted(set(group)))
        cells = [names, len(group), f"{wall:.1f}", f"{samples / wall:,.0f}", f"{seconds:.1f}"]
        print("| " + " | ".join(map(str, cells)) + f" | {wall / seconds:.2f} |")
    total_bound = bound.bound_seconds(whole, measured)
    print(
        f"\nwhole protocol (data, training, evaluation, report): {total:.1f} s; its matmul bound "
        f"{total_bound:.1f} s (ratio {total / total_bound:.2f}); peak RSS {peak_rss_mb:,.0f} MB\n"
    )
    print("\n".join(bound.report(whole, measured)))


EVAL_CHUNK = StackedModule.eval_chunk  # images per forward pass when predicting


def group_products(record: dict, k: int, y_test: torch.Tensor) -> Counter:
    """A group's training products and its evaluation on the monitor after every epoch: the
    test set (or the validation split, its size scaled by the test set's share) without the
    classes its transfer set leaves out."""
    spec, sizes, identity = record["spec"], tuple(record["spec"]["sizes"]), record["identity"]
    kept = int((~torch.isin(y_test, torch.tensor(identity.get("transfer_omit", [])))).sum())
    val = identity["rows"].get("val_size") or 0
    monitor = kept if not identity.get("monitor", "").startswith("validation") else val * kept // len(y_test)
    out = bound.training(sizes, k, record["transfer_size"], spec["batch_size"], spec["epochs"])
    return out + bound.inference(sizes, k, monitor, EVAL_CHUNK, spec["epochs"])


if __name__ == "__main__":
    main()
