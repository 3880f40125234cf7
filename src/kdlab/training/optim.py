"""Optimisers over stacked parameters (a leading model axis), with a learning rate per model.

torch.optim takes one learning rate per parameter tensor, but a stacked tensor holds K
models. Adam: torch's fused kernel is elementwise, so it runs unchanged on each model's
slice, and models that share a learning rate go through one fused call. SGD with momentum
(heavy-ball, or Nesterov's): one multiply-add per tensor with the learning rates broadcast
along the model axis.
Both take a schedule factor at every step.
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam

from kdlab.choices import OPTIMIZERS


class StackedAdam:
    def __init__(
        self,
        params: list[torch.nn.Parameter],
        lrs: list[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.params = list(params)
        self.betas = betas
        self.eps = eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.by_lr: dict[float, list[int]] = {}
        for k, lr in enumerate(lrs):
            self.by_lr.setdefault(float(lr), []).append(k)
        device = self.params[0].device
        # fused Adam counts steps per tensor, so each (model, tensor) slice has its own counter
        self.steps = {
            (k, i): torch.zeros((), dtype=torch.float32, device=device)
            for k in range(len(lrs))
            for i in range(len(self.params))
        }
        self.fused = device.type in ("cpu", "cuda")

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr_factor: float = 1.0) -> None:
        for lr, models in self.by_lr.items():
            slices = [(k, i) for k in models for i in range(len(self.params))]
            adam(
                [self.params[i][k] for k, i in slices],
                [self.params[i].grad[k] for k, i in slices],
                [self.exp_avg[i][k] for k, i in slices],
                [self.exp_avg_sq[i][k] for k, i in slices],
                [],
                [self.steps[s] for s in slices],
                fused=self.fused,
                amsgrad=False,
                beta1=self.betas[0],
                beta2=self.betas[1],
                lr=lr * lr_factor,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )


class StackedSGD:
    """SGD with momentum, as torch.optim.SGD: v = m v + g; p -= lr v (heavy-ball), or
    p -= lr (g + m v) with `nesterov`."""

    def __init__(
        self, params: list[torch.nn.Parameter], lrs: list[float], momentum: float, nesterov: bool = False
    ):
        self.params = list(params)
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity = [torch.zeros_like(p) for p in self.params]
        self.lrs = torch.tensor(lrs, dtype=self.params[0].dtype, device=self.params[0].device)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr_factor: float = 1.0) -> None:
        for p, v in zip(self.params, self.velocity):
            v.mul_(self.momentum).add_(p.grad)
            step = p.grad.add(v, alpha=self.momentum) if self.nesterov else v
            p.addcmul_(self.lrs.view(-1, *[1] * (p.dim() - 1)), step, value=-lr_factor)


def make_optimizer(
    name: str, params: list[torch.nn.Parameter], lrs: list[float], momentum: float
) -> StackedAdam | StackedSGD:
    if name == "adam":
        return StackedAdam(params, lrs)
    if name in ("sgd", "nesterov"):
        return StackedSGD(params, lrs, momentum, nesterov=name == "nesterov")
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
