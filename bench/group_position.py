"""Does a model's matmul depend on its position in a training group? For each layer product of
the protocols' MLPs (forward, and both backward products) and each batch size, compare every
position k of a group of K with the same product alone, bit for bit. A position that differs
breaks the promise that a model trained in a group is the model trained alone: on this
machine's MKL the 300-to-10 forward product differs at odd positions for a partial batch of 109
rows (the no-3 transfer set's last batch), whose per-model slab is not aligned.

    python bench/group_position.py --rows 256 109 96 --group 2 9
"""

from __future__ import annotations

import argparse

import torch

# (inputs, outputs) of every layer of the protocols' MLPs
PRODUCTS = [(784, 1200), (1200, 1200), (1200, 10), (784, 800), (800, 800), (800, 10),
            (784, 300), (300, 300), (300, 10), (784, 30), (30, 30), (30, 10)]  # fmt: skip


def differing(rows: int, m: int, n: int, group: int) -> list[str]:
    """The (position, product) pairs of a group of `group` that differ from the product alone."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(group, rows, m, generator=gen), torch.randn(group, m, n, generator=gen)
    g = torch.randn(group, rows, n, generator=gen)

    def products(a, b, g):
        return {"fwd": a @ b, "dW": a.transpose(1, 2) @ g, "dX": g @ b.transpose(1, 2)}

    together = products(a, b, g)
    out = []
    for k in range(group):
        alone = products(a[k : k + 1], b[k : k + 1], g[k : k + 1])
        out += [f"{k}:{name}" for name in alone if not torch.equal(together[name][k : k + 1], alone[name])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[256, 109, 96])
    parser.add_argument("--group", type=int, nargs="+", default=[2, 9])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()},",
        f"{torch.get_num_threads()} threads",
    )
    for rows in args.rows:
        for group in args.group:
            bad = {f"{m}x{n}": d for m, n in PRODUCTS if (d := differing(rows, m, n, group))}
            print(
                f"rows {rows:4d}, group of {group}: "
                + ("; ".join(f"{p} at {' '.join(d)}" for p, d in bad.items()) or "every position identical")
            )


if __name__ == "__main__":
    main()
