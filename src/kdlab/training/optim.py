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
        by_lr: dict[float, list[int]] = {}
        for k, lr in enumerate(lrs):
            by_lr.setdefault(float(lr), []).append(k)
        # one fused call per learning rate, on (tensor, model) slices; with one learning rate, on
        # the whole stacked tensors (model None): the kernel is elementwise, so the numbers are the
        # same. It counts steps per tensor it is given: each slice has its own counter. The slices
        # of the parameters and moments are views made once; only the gradients are new each step.
        tensors = range(len(self.params))
        device = self.params[0].device
        self.calls = []
        for lr, models in by_lr.items():
            # each model's own slices: the fused kernel then splits a model's elements into
            # vector lanes and tail as it splits the model alone (whole stacked tensors put a
            # model's elements at other lanes, and a last bit can differ)
            slices = (
                [(i, None) for i in tensors] if len(lrs) == 1 else [(i, k) for k in models for i in tensors]
            )
            with torch.no_grad():  # views the step writes into, outside autograd
                views = [_pick(t, slices) for t in (self.params, self.exp_avg, self.exp_avg_sq)]
            self.calls.append((lr, slices, *views, [torch.zeros((), device=device) for _ in slices]))
        self.fused = device.type in ("cpu", "cuda")

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_tensors(self) -> list[torch.Tensor]:
        """Everything a step reads besides the parameters and gradients (to save and restore)."""
        return [*self.exp_avg, *self.exp_avg_sq, *(c for call in self.calls for c in call[-1])]

    @torch.no_grad()
    def step(self, lr_factor: float = 1.0) -> None:
        for lr, slices, params, exp_avg, exp_avg_sq, counters in self.calls:
            adam(
                params,
                _pick([p.grad for p in self.params], slices),
                exp_avg,
                exp_avg_sq,
                [],
                counters,
                fused=self.fused,
                amsgrad=False,
                beta1=self.betas[0],
                beta2=self.betas[1],
                lr=lr * lr_factor,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )


def _pick(tensors: list[torch.Tensor], slices: list[tuple[int, int | None]]) -> list[torch.Tensor]:
    """Tensor i whole (model None), or its model k's slice, for each (i, k) of `slices`."""
    return [tensors[i] if k is None else tensors[i][k] for i, k in slices]


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

    def state_tensors(self) -> list[torch.Tensor]:
        return self.velocity

    @torch.no_grad()
    def step(self, lr_factor: float = 1.0) -> None:
        for p, v in zip(self.params, self.velocity):
            v.mul_(self.momentum).add_(p.grad)
            # Nesterov's g + m v goes into the gradient, which is not used again: a new tensor
            # the size of the weights at every step costs more than the arithmetic
            step = p.grad.add_(v, alpha=self.momentum) if self.nesterov else v
            p.addcmul_(self.lrs.view(-1, *[1] * (p.dim() - 1)), step, value=-lr_factor)


def make_optimizer(
    name: str, params: list[torch.nn.Parameter], lrs: list[float], momentum: float
) -> StackedAdam | StackedSGD:
    if name == "adam":
        return StackedAdam(params, lrs)
    if name in ("sgd", "nesterov"):
        return StackedSGD(params, lrs, momentum, nesterov=name == "nesterov")
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
