"""What the benchmarks compare against: the machine's fp32 matmul throughput and model FLOPs."""

from __future__ import annotations

import itertools
import time

import torch


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


def training_flops_per_sample(sizes) -> int:
    """Forward (2 per MAC), weight gradient (2) and input gradient (2, none for the first layer)."""
    return sum((4 if i == 0 else 6) * a * b for i, (a, b) in enumerate(itertools.pairwise(sizes)))
