"""The lower bound of a run: the time its own matmuls take on this machine.

Every product an MLP group computes is one `baddbmm` of K models at once: per layer of widths
(a, b), the forward [B, a] @ [a, b], and in the backward pass the weight gradient [a, B] @ [B, b]
and (but for the first layer, whose input is the data) the input gradient [B, b] @ [b, a]; an
evaluation or a teacher's logits is the forward alone, in chunks of images. Each distinct shape
is timed here at its own rate (small products run far below a 2048² one), and the bound is the
sum over the run of each product's FLOPs divided by its rate: written out below, so it can be
checked, and everything else a run does (masks, Adam, the loss, gathering batches, Python) is
what its ratio to the bound measures.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from kdlab.models.stacked import StackedModule
from kdlab.training import engine

EVAL_CHUNK = StackedModule.eval_chunk  # images per forward pass when predicting


@dataclass(frozen=True)
class Matmul:
    """K products [m, n] @ [n, p] at once: the forward's baddbmm, or a bmm of the backward pass
    whose first (weight gradient) or second (input gradient) operand is a transposed view."""

    k: int
    m: int
    n: int
    p: int
    transposed: str = ""  # "", "a" or "b"

    @property
    def flops(self) -> int:
        return 2 * self.k * self.m * self.n * self.p


def _batches(rows: int, batch: int) -> Counter:
    """Batch sizes of one pass over `rows` (the last one partial), with their counts."""
    full, rest = divmod(rows, batch)
    return Counter({batch: full, **({rest: 1} if rest else {})})


def training(sizes: tuple[int, ...], k: int, rows: int, batch: int, epochs: int) -> Counter:
    """The products of `epochs` passes of K models over `rows` images, in the engine's batches."""
    out: Counter = Counter()
    for b, count in Counter(s.stop - s.start for s in engine.batches(rows, batch)).items():
        for i, (n, p) in enumerate(itertools.pairwise(sizes)):
            out[Matmul(k, b, n, p)] += count * epochs  # forward
            out[Matmul(k, n, b, p, "a")] += count * epochs  # weight gradient: x^T @ grad
            if i > 0:
                out[Matmul(k, b, p, n, "b")] += count * epochs  # input gradient: grad @ w^T
    return out


def inference(sizes: tuple[int, ...], k: int, rows: int, chunk: int, passes: int = 1) -> Counter:
    """The products of `passes` forward passes of K models over `rows` images, `chunk` at a time
    (an evaluation every epoch, a teacher's logits once)."""
    out: Counter = Counter()
    for c, count in _batches(rows, chunk).items():
        for n, p in itertools.pairwise(sizes):
            out[Matmul(k, c, n, p)] += count * passes
    return out


def rate(mm: Matmul, min_seconds: float = 0.2) -> float:
    """Attained FLOP/s of one shape, computed as the run computes it: the best of repeated
    products over at least `min_seconds`."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(mm.k, mm.n, mm.m, generator=gen).mT if mm.transposed == "a" else None
    a = torch.randn(mm.k, mm.m, mm.n, generator=gen) if a is None else a
    b = torch.randn(mm.k, mm.p, mm.n, generator=gen).mT if mm.transposed == "b" else None
    b = torch.randn(mm.k, mm.n, mm.p, generator=gen) if b is None else b
    bias = torch.randn(mm.k, 1, mm.p, generator=gen)
    product = (lambda: torch.bmm(a, b)) if mm.transposed else (lambda: torch.baddbmm(bias, a, b))
    product()
    best, spent = float("inf"), 0.0
    while spent < min_seconds or best == float("inf"):
        start = time.perf_counter()
        product()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return mm.flops / best


def rates(products: Iterable[Matmul], min_seconds: float = 0.2) -> dict[Matmul, float]:
    """Each distinct shape's rate, measured once."""
    return {mm: rate(mm, min_seconds) for mm in set(products)}


def bound_seconds(products: Counter, measured: dict[Matmul, float]) -> float:
    """The run's matmul time: each product's FLOPs over its own rate, times how often it runs."""
    return sum(count * mm.flops / measured[mm] for mm, count in products.items())


def report(products: Counter, measured: dict[Matmul, float], top: int = 8) -> list[str]:
    """The shapes that take most of the bound, as table rows: what the bound is made of."""
    lines = ["| K × [m, n] @ [n, p] | times | GFLOP/s | seconds |", "|---|---:|---:|---:|"]
    ranked = sorted(products.items(), key=lambda item: -item[1] * item[0].flops / measured[item[0]])
    for mm, count in ranked[:top]:
        seconds = count * mm.flops / measured[mm]
        kind = {"": "forward", "a": "weight gradient", "b": "input gradient"}[mm.transposed]
        shape = f"{mm.k} × [{mm.m}, {mm.n}] @ [{mm.n}, {mm.p}] ({kind})"
        lines.append(f"| {shape} | {count:,} | {measured[mm] / 1e9:.0f} | {seconds:.1f} |")
    return lines


def group_products(record: dict, k: int, y_test: torch.Tensor) -> Counter:
    """A group's training products (`record` is one of its models' record.json) and its
    evaluation on the monitor after every epoch: the test set (or the validation split, its size
    scaled by the test set's share) without the classes its transfer set leaves out."""
    spec, sizes, identity = record["spec"], tuple(record["spec"]["sizes"]), record["identity"]
    kept = int((~torch.isin(y_test, torch.tensor(identity.get("transfer_omit", [])))).sum())
    val = identity["rows"].get("val_size") or 0
    monitor = kept if not identity.get("monitor", "").startswith("validation") else val * kept // len(y_test)
    out = training(sizes, k, record["transfer_size"], spec["batch_size"], spec["epochs"])
    return out + inference(sizes, k, monitor, EVAL_CHUNK, spec["epochs"])


def trained_groups(records: list[dict]) -> dict[tuple, dict]:
    """One record per group that trained, keyed by its models' names and its wall time (a group
    split to fit memory repeats the names, not the time)."""
    groups: dict[tuple, dict] = {}
    for record in records:
        groups.setdefault((tuple(record["group"]), record["group_wall_time_s"]), record)
    return groups


def group_table(groups: dict[tuple, dict], products: dict, measured: dict[Matmul, float]) -> list[str]:
    """Per group: its models, wall time, images/s per model, matmul bound and their ratio."""
    lines = [
        "| group | models | wall s | samples/s per model | matmul bound s | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (group, wall), record in groups.items():
        seconds = bound_seconds(products[(group, wall)], measured)
        samples = record["transfer_size"] * record["spec"]["epochs"]
        names = ", ".join(sorted(set(group)))
        cells = [names, len(group), f"{wall:.1f}", f"{samples / wall:,.0f}", f"{seconds:.1f}"]
        lines.append("| " + " | ".join(map(str, cells)) + f" | {wall / seconds:.2f} |")
    return lines


def run_products(records: list[dict], products: dict, test_rows: int) -> Counter:
    """The whole run's products: its groups', at least one test pass per model, and each
    teacher's logits on its training rows, once, or under each of the (2s + 1)² shifts when its
    students read consistent views (`soft_targets`) of images moved by up to s pixels (the run
    computes more; leaving it out only lowers the bound)."""
    whole = sum(products.values(), Counter())
    for record in records:
        whole += inference(tuple(record["spec"]["sizes"]), 1, test_rows, EVAL_CHUNK)
    shifts = [r["spec"]["jitter"] for r in records if r["identity"].get("soft_targets") == "consistent views"]
    views = (2 * max(shifts) + 1) ** 2 if shifts else 1
    for teacher in (r for r in records if r["name"] == "Teacher"):
        whole += inference(tuple(teacher["spec"]["sizes"]), 1, teacher["transfer_size"], EVAL_CHUNK, views)
    return whole


def trained_records(run: Path) -> tuple[dict, list[dict]]:
    """A saved run's results and the records of the models it trained (not those it reused)."""
    results = json.loads((run / "results.json").read_text())
    infos = [info for infos in results["models"].values() for info in infos if not info["reused"]]
    return results, [json.loads((run / info["folder"] / "record.json").read_text()) for info in infos]


def run_groups(records: list[dict], y_test: torch.Tensor) -> tuple[dict, dict, Counter]:
    """The trained groups of a run, each group's products, and the whole run's."""
    groups = trained_groups(records)
    products = {key: group_products(record, len(key[0]), y_test) for key, record in groups.items()}
    return groups, products, run_products(records, products, len(y_test))
