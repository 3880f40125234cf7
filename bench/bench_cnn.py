"""Benchmark StackedCNN training steps: grouped convolution against a loop over the models.

Times forward, backward and an Adam step of K models on random CIFAR-sized images for the
teacher and the student widths, K = 1 and 4, with the grouped convolution StackedCNN uses, a
Python loop calling F.conv2d once per model, and each of them in channels_last memory format.
Prints images/s per model and all models, and the seconds one model needs for an epoch of
50,000 images. Random data: this measures speed only.

    python bench/bench_cnn.py --batch-size 128 --steps 10
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from kdlab.models import StackedCNN
from kdlab.models.cnn import KERNEL
from kdlab.training.optim import StackedAdam

TEACHER = (3072, 64, 128, 256, 10)
STUDENT = (3072, 16, 32, 64, 10)
EPOCH = 50_000


class LoopCNN(StackedCNN):
    """The same models run one at a time: one F.conv2d per model and stage."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for k in range(x.shape[0]):
            h = self._layout(x[k].reshape(-1, *self.image_shape))
            for w, bias in zip(self.weights[:-1], self.biases[:-1]):
                h = F.max_pool2d(torch.relu(F.conv2d(h, w[k], bias[k], padding=KERNEL // 2)), 2)
            outputs.append(h.mean((2, 3)))
        return torch.stack(outputs)

    def _layout(self, h: torch.Tensor) -> torch.Tensor:
        return h


class LoopChannelsLast(LoopCNN):
    def _layout(self, h: torch.Tensor) -> torch.Tensor:
        return h.contiguous(memory_format=torch.channels_last)


class GroupedChannelsLast(StackedCNN):
    """The grouped convolution on channels_last activations."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        k, b = x.shape[:2]
        h = x.reshape(k, b, *self.image_shape).transpose(0, 1).reshape(b, -1, *self.image_shape[1:])
        h = h.contiguous(memory_format=torch.channels_last)
        for w, bias in zip(self.weights[:-1], self.biases[:-1]):
            w = w.flatten(0, 1).contiguous(memory_format=torch.channels_last)
            h = F.max_pool2d(torch.relu(F.conv2d(h, w, bias.flatten(), padding=KERNEL // 2, groups=k)), 2)
        return h.mean((2, 3)).view(b, k, -1).transpose(0, 1)


VARIANTS = {
    "grouped": StackedCNN,
    "grouped, channels_last": GroupedChannelsLast,
    "loop": LoopCNN,
    "loop, channels_last": LoopChannelsLast,
}


def images_per_second(cls: type[StackedCNN], sizes: tuple[int, ...], k: int, batch: int, steps: int) -> float:
    """Training images per second, all K models together, after two warm-up steps."""
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

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return k * batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch_size}, {args.steps} timed steps, {args.threads} threads, fp32, Adam\n")
    print("| model | sizes | params | K | implementation | images/s per model | images/s, all | s/epoch |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for name, sizes in (("student", STUDENT), ("teacher", TEACHER)):
        params = StackedCNN(sizes, 1).num_params_per_model()
        for k in (1, 4):
            for variant in args.variants:
                total = images_per_second(VARIANTS[variant], sizes, k, args.batch_size, args.steps)
                print(
                    f"| {name} | {'-'.join(map(str, sizes[1:-1]))} | {params:,} | {k} | {variant} "
                    f"| {total / k:,.0f} | {total:,.0f} | {EPOCH * k / total:,.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
