"""Where a training step's time goes: torch.profiler over the engine's own loop.

Trains one group for a number of steps on MNIST, under the profiler, and prints its ops by
self CPU time, next to the step's matmul bound (bench/bound.py) so that what is not matmul is
visible, then the same time by what the step was doing (each op charged to the kdlab function
that called it, from the profiler's Python stacks): the matmuls forward and backward, the
dropout masks, max-norm, the optimiser, and so on. Groups:

- `teacher`: the hinton2015 teacher, 784-1200-1200-10, input dropout 0.2, hidden dropout 0.5,
  max-norm, ±2-px jitter, Nesterov momentum (the recipe's);
- `students`: K 784-800-800-10 students distilling (soft targets of precomputed logits), Adam;
- `small`: K mythical-digit students, 784-300-300-10 with dropout 0.5, alpha 0.9, Adam.

    python bench/profile_step.py --data-dir ../shared/data --group teacher --steps 200
    python bench/profile_step.py --group students --models 2 --steps 200
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import bound
import groups
import torch
from torch.profiler import ProfilerActivity, profile

from kdlab.protocols.common import ENGINE_VERSION
from kdlab.training.engine import Monitor, TrainSpec, train_group

GROUPS = {
    "teacher": dict(
        sizes=(784, 1200, 1200, 10),
        dropout=0.5,
        input_dropout=0.2,
        max_norm=3.5,
        jitter=2,
        optimizer="nesterov",
        momentum=0.9,
        lr=0.05,
        alpha=0.0,
    ),
    "students": dict(sizes=(784, 800, 800, 10), dropout=0.0, optimizer="adam", lr=1e-3, alpha=1.0),
    "small": dict(sizes=(784, 300, 300, 10), dropout=0.5, optimizer="adam", lr=1e-3, alpha=0.9),
}


def specs(group: str, models: int, batch: int) -> list[TrainSpec]:
    """K models of `group`, each with its own seeds, for one pass."""
    fields = dict(GROUPS[group])
    sizes, lr, alpha = fields.pop("sizes"), fields.pop("lr"), fields.pop("alpha")
    return [
        TrainSpec(
            sizes,
            epochs=1,
            batch_size=batch,
            lr=lr,
            alpha=alpha,
            temperature=20.0,
            t2=True,
            init_seed=k,
            stream_seed=100 + k,
            schedule="cosine",
            **fields,
        )
        for k in range(models)
    ]


def main() -> None:
    parser = groups.parser(__doc__)
    parser.add_argument("--group", choices=tuple(GROUPS), default="teacher")
    parser.add_argument("--models", type=int, default=1, help="K models in the group")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--top", type=int, default=25, help="ops to print")
    parser.add_argument("--no-profile", action="store_true", help="time the steps without the profiler")
    args = parser.parse_args()
    data, train, teacher = groups.setup(args)
    rows = torch.arange(args.steps * args.batch_size) % len(data.y_train)  # more steps than an epoch: wrap
    monitor = Monitor(data.x_test[:1], data.y_test[:1])  # the per-epoch evaluation is not profiled here
    group = specs(args.group, args.models, args.batch_size)
    groups.warm_up(group, train, monitor, teacher)
    cpu = [ProfilerActivity.CPU]
    profiler = nullcontext() if args.no_profile else profile(activities=cpu, with_stack=True)
    with profiler as prof:
        start = time.perf_counter()
        train_group(group, train, rows, monitor, teacher)
        seconds = time.perf_counter() - start
    products = bound.training(group[0].sizes, args.models, len(rows), args.batch_size, 1)
    matmul = bound.bound_seconds(products, bound.rates(products))
    print(
        f"{args.group}, engine {ENGINE_VERSION}, K = {args.models}, "
        f"batch {args.batch_size}, {args.steps} steps, {torch.get_num_threads()} threads: "
        f"{1e3 * seconds / args.steps:.2f} ms per step, its matmuls {1e3 * matmul / args.steps:.2f} ms "
        f"(ratio {seconds / matmul:.2f}{'' if args.no_profile else ', the profiler overhead included'})\n"
    )
    if prof is not None:
        ops = [op for op in prof.key_averages() if op.key.startswith("aten::")]  # not Python frames
        print("\n".join(op_table(ops, args.steps, seconds, args.top)))
        print("\n" + "\n".join(part_table(prof.events(), args.steps, seconds, matmul)))


def op_table(ops: list, steps: int, seconds: float, top: int) -> list[str]:
    """The ops that took most self CPU time, per step, and what no op accounts for (Python,
    dispatch, waiting)."""
    ranked = sorted(ops, key=lambda op: -op.self_cpu_time_total)
    lines = ["| op | ms per step | share of the step | calls per step |", "|---|---:|---:|---:|"]
    for op in ranked[:top]:
        ms = op.self_cpu_time_total / 1e3 / steps
        lines.append(f"| `{op.key}` | {ms:.2f} | {ms / (1e3 * seconds / steps):.1%} | {op.count / steps:g} |")
    outside = seconds - sum(op.self_cpu_time_total for op in ops) / 1e6
    lines.append(f"| (outside any op) | {1e3 * outside / steps:.2f} | {outside / seconds:.1%} | |")
    return lines


MATMULS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm")
# the kdlab function an op was called from (its file and name) -> what the step was doing
PARTS = {
    "_dropout_mask": "dropout masks (drawing them)",
    "_drop_inputs": "input dropout (mask multiply)",
    "max_norm_": "max-norm (sums of squares, rescale)",
    "step": "optimiser step",
    "translate": "jitter (moving the images)",
    "move": "jitter (moving the images)",
    "kd_loss": "loss (softmax at T, cross-entropies)",
    "of": "soft targets (gather)",
    "forward": "forward, element-wise (mask multiply, ReLU)",
    "train_group": "batch gather, accuracy, loss sums",
    "uniform_fan_in_": "set-up (initial weights, optimiser state)",
    "reset_parameters": "set-up (initial weights, optimiser state)",
    "__init__": "set-up (initial weights, optimiser state)",
    "score": "end of the pass (evaluation)",
    "predict": "end of the pass (evaluation)",
}


def part_of(event) -> str:
    """What one op was part of: a matmul forward or backward, else the nearest kdlab function
    of PARTS that called it (a helper or comprehension counts as its caller), else the
    autograd function that ran it (backward, element-wise)."""
    matmul = event.name in MATMULS
    innermost = None  # the kdlab function nearest the op, named when no caller is in PARTS
    parent = event.cpu_parent
    while parent is not None:
        if "kdlab/" in parent.name:
            function = parent.name.rsplit(": ", 1)[-1]
            if matmul and function == "forward":
                return "matmuls, forward"
            if function in PARTS:
                return f"matmuls, in {function}" if matmul else PARTS[function]
            innermost = innermost or function
        elif parent.name.startswith("autograd::engine"):
            return "matmuls, backward" if matmul else "backward, element-wise"
        parent = parent.cpu_parent
    if innermost is not None:
        return f"matmuls, in {innermost}" if matmul else f"other ({innermost})"
    return "matmuls, elsewhere" if matmul else "other"


def part_table(events: list, steps: int, seconds: float, matmul: float) -> list[str]:
    """The step's time by what it was doing (torch ops' self time, charged by part_of), what no
    op accounts for (Python, dispatch, the profiler's own overhead), and the matmul bound."""
    parts: dict[str, float] = {}
    for event in events:
        if event.name.startswith("aten::"):
            part = part_of(event)
            parts[part] = parts.get(part, 0.0) + event.self_cpu_time_total / 1e6
    lines = ["| part of the step | ms per step | share of the step |", "|---|---:|---:|"]
    outside = seconds - sum(parts.values())
    small = sum(spent for spent in parts.values() if spent < 0.01e-3 * steps)
    parts = {part: spent for part, spent in parts.items() if spent >= 0.01e-3 * steps}
    if small >= 0.005e-3 * steps:  # else it would print as 0.00
        parts["other (under 0.01 ms each)"] = small
    for part, spent in sorted(parts.items(), key=lambda item: -item[1]):
        lines.append(f"| {part} | {1e3 * spent / steps:.2f} | {spent / seconds:.1%} |")
    for label, spent in (
        ("outside any op (Python, dispatch, the profiler)", outside),
        ("**the step**", seconds),
        ("its matmuls at the rates measured alone (the bound)", matmul),
    ):
        lines.append(f"| {label} | {1e3 * spent / steps:.2f} | {spent / seconds:.1%} |")
    return lines


if __name__ == "__main__":
    main()
