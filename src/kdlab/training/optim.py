"""Adam over stacked parameters with a learning rate per model, on torch's fused kernel.

torch.optim.Adam takes one learning rate per parameter tensor, but a stacked tensor holds K
models. The fused kernel is elementwise, so it runs unchanged on each model's slice: models
that share a learning rate go through one fused call, one pass over memory.
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam


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
    def step(self) -> None:
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
                lr=lr,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )
