"""Benchmark StackedCNN training steps: a loop over the models against one grouped convolution.

Times forward, backward and an Adam step of K models on random CIFAR-sized images for the
teacher and the student widths, K = 1 and 4, with the loop calling F.conv2d once per model
that StackedCNN uses, a grouped convolution over all K models, and each of them with
channels_last and with contiguous activations.
Prints images/s per model and all models, and the seconds a group needs for an epoch of
50,000 images per model. Random data: this measures speed only.

    python bench/bench_cnn.py --batch-size 128 --steps 10
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from kdlab.models import StackedCNN
from kdlab.models.cnn import KERNEL
from kdlab.settings.study import DEFAULT_WIDTHS
from kdlab.training.optim import StackedAdam

EPOCH = 50_000
TEACHER, STUDENT = DEFAULT_WIDTHS["cnn"]
IMAGE, CLASSES = 3 * 32 * 32, 10  # CIFAR-10


class LoopContiguous(StackedCNN):
    """StackedCNN's loop over the models on contiguous (channels first) activations."""

    memory_format = torch.contiguous_format


class Grouped(StackedCNN):
    """All K models in one grouped convolution per stage, activations [B, K*C, H, W]."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        k, b = x.shape[:2]
        h = x.reshape(k, b, *self.image_shape).transpose(0, 1).reshape(b, -1, *self.image_shape[1:])
        h = h.contiguous(memory_format=self.memory_format)
        for w, bias in zip(self.weights[:-1], self.biases[:-1]):
            kernel = w.flatten(0, 1).contiguous(memory_format=self.memory_format)
            h = F.conv2d(h, kernel, bias.flatten(), padding=KERNEL // 2, groups=k)
            h = F.max_pool2d(torch.relu(h), 2)
        return h.mean((2, 3)).view(b, k, -1).transpose(0, 1)


class GroupedContiguous(Grouped):
    memory_format = torch.contiguous_format


VARIANTS = {
    "loop, channels_last (StackedCNN)": StackedCNN,
    "loop, contiguous": LoopContiguous,
    "grouped, channels_last": Grouped,
    "grouped, contiguous": GroupedContiguous,
}


def training_step(cls: type[StackedCNN], sizes: tuple[int, ...], k: int, batch: int) -> Callable[[], None]:
    """One forward, backward and Adam step of K models of class `cls` on random images."""
    model = cls(sizes, k, dropout=0.5)
    model.reset_parameters([torch.Generator().manual_seed(i) for i in range(k)])
    generators = [torch.Generator().manual_seed(100 + i) for i in range(k)]
    optimizer = StackedAdam(list(model.parameters()), [1e-3] * k)
    x = torch.randn(k, batch, sizes[0])
    y = torch.randint(0, sizes[-1], (k * batch,))

    def step() -> None:
        logits = model(x, generators)
        loss = F.cross_entropy(logits.flatten(0, 1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def fastest_steps(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Seconds of the fastest of `repeats` calls of each step, after one warm-up call. The steps
    take turns, so that other work on the machine slows them alike, and the fastest call is
    the least disturbed one."""
    best = dict.fromkeys(steps, float("inf"))
    for repeat in range(repeats + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if repeat > 0:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def _widths(text: str) -> tuple[int, ...]:
    return tuple(int(w) for w in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case and implementation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--teacher", type=_widths, default=TEACHER, help="widths, e.g. 64,128,256")
    parser.add_argument("--student", type=_widths, default=STUDENT, help="widths, e.g. 16,32,64")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch_size}, fastest of {args.steps} steps taken in turns, ", end="")
    print(f"{args.threads} threads, fp32, Adam\n")
    print("| model | sizes | params | K | implementation | images/s per model | images/s, all | s/epoch |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for name, widths in (("student", args.student), ("teacher", args.teacher)):
        sizes = (IMAGE, *widths, CLASSES)
        params = StackedCNN(sizes, 1).num_params_per_model()
        for k in (1, 4):
            steps = {v: training_step(VARIANTS[v], sizes, k, args.batch_size) for v in args.variants}
            for variant, seconds in fastest_steps(steps, args.steps).items():
                per_model = args.batch_size / seconds
                print(
                    f"| {name} | {'-'.join(map(str, sizes[1:-1]))} | {params:,} | {k} | {variant} "
                    f"| {per_model:,.0f} | {k * per_model:,.0f} | {EPOCH / per_model:,.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
