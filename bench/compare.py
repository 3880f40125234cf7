"""One engine against another, step for step: this checkout and an earlier commit, interleaved.

Runs `profile_step.py --no-profile` for each group (the hinton2015 teacher and K = 1, 2, 8
mythical-digit students) under each engine in turn, `--repeats` times, each a fresh process
(kdlab from that engine's `src/`), and prints the fastest ms per step of each with their ratio.
Interleaving and taking the fastest repeat keep a noisy machine's drift out of the ratio; run
it with nothing else running. The earlier commit is checked out in a temporary worktree.

    python bench/compare.py --against db9e780 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GROUPS = (
    ("teacher", 1, 300),
    ("small", 1, 400),
    ("small", 2, 400),
    ("small", 8, 150),
)
STEP = re.compile(r"([\d.]+) ms per step, its matmuls ([\d.]+) ms")


def step_ms(src: Path, group: str, models: int, steps: int, data_dir: Path) -> tuple[float, float]:
    """(ms per step, its matmul bound in ms) of one fresh run of profile_step.py."""
    command = [sys.executable, str(HERE / "profile_step.py"), "--no-profile", "--group", group]
    command += ["--models", str(models), "--steps", str(steps), "--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    found = STEP.search(out)
    if found is None:
        raise RuntimeError(f"no step time in the output of {' '.join(command)}:\n{out}")
    return float(found[1]), float(found[2])


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--against", required=True, help="the earlier engine's commit")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0, help="steps of every group (0: each group's own)")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        git = ["git", "-C", str(HERE.parent), "worktree"]
        subprocess.run([*git, "add", "--quiet", "--detach", str(before), args.against], check=True)
        try:
            engines = {"before": before / "src", "after": HERE.parent / "src"}
            best: dict[tuple, float] = {}
            bounds: dict[tuple, float] = {}
            for _ in range(args.repeats):
                for name, src in engines.items():
                    for group in GROUPS:
                        ms, matmul = step_ms(src, *group[:2], args.steps or group[2], data_dir)
                        key = (name, *group)
                        best[key] = min(best.get(key, float("inf")), ms)
                        bounds[group] = min(bounds.get(group, float("inf")), matmul)
        finally:
            subprocess.run([*git, "remove", "--force", str(before)], check=True)
    head = ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(head, capture_output=True, text=True, check=True)
    after = commit.stdout.strip()
    print(f"before: {args.against}; after: this checkout ({after}); the fastest of {args.repeats} runs\n")
    print("| group | K | before (ms per step) | after (ms per step) | after / before | its matmuls (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    for group in GROUPS:
        b, a = best[("before", *group)], best[("after", *group)]
        print(f"| {group[0]} | {group[1]} | {b:.2f} | {a:.2f} | {a / b:.2f} | {bounds[group]:.2f} |")


if __name__ == "__main__":
    main()
