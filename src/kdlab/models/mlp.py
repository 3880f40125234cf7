"""K same-shaped MLPs whose parameters are stacked along a leading model axis.

One `torch.baddbmm` per layer runs all K models at once; a single model is a group of one.
Every model draws its initialisation and its dropout masks from its own generator, so a
model trained inside a group gets the same numbers as the same model trained alone.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


class StackedMLP(nn.Module):
    """ReLU MLPs `sizes[0]-...-sizes[-1]` with dropout `dropout` after each hidden layer and
    `input_dropout` on the inputs (Srivastava et al. 2014, as used for the paper's teacher)."""

    def __init__(
        self,
        sizes: tuple[int, ...],
        num_models: int,
        dropout: float = 0.0,
        device: torch.device | str = "cpu",
        input_dropout: float = 0.0,
    ):
        super().__init__()
        self.sizes = tuple(sizes)
        self.num_models = num_models
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(num_models, fan_in, fan_out, device=device))
            for fan_in, fan_out in itertools.pairwise(sizes)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(num_models, 1, fan_out, device=device)) for fan_out in sizes[1:]
        )

    @torch.no_grad()
    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        """PyTorch's nn.Linear initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), per model."""
        for k, gen in enumerate(generators):
            for w, b in zip(self.weights, self.biases):
                bound = 1.0 / math.sqrt(w.shape[1])
                w[k].uniform_(-bound, bound, generator=gen)
                b[k].uniform_(-bound, bound, generator=gen)

    def forward(self, x: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """Logits [K, B, C] for inputs [K, B, D]; dropout is on when `generators` are given."""
        last = len(self.weights) - 1
        if generators is not None and self.input_dropout > 0:
            x = x * self._dropout_mask(x, generators, self.input_dropout)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
                if generators is not None and self.dropout > 0:
                    x = x * self._dropout_mask(x, generators, self.dropout)
        return x

    @staticmethod
    def _dropout_mask(x: torch.Tensor, generators: list[torch.Generator], rate: float) -> torch.Tensor:
        """Inverted-dropout mask, each model's slice drawn from that model's generator."""
        noise = torch.empty_like(x)
        for k, gen in enumerate(generators):
            noise[k].uniform_(generator=gen)
        return (noise >= rate).to(x.dtype) * (1.0 / (1.0 - rate))

    @torch.no_grad()
    def max_norm_(self, limit: float) -> None:
        """Rescale every unit's incoming weight vector whose L2 norm exceeds `limit` to `limit`
        (the max-norm constraint of the paper's teacher; biases are not constrained)."""
        for w in self.weights:  # [K, in, out]: a unit's incoming weights are a column
            norms = torch.linalg.vector_norm(w, dim=1, keepdim=True)
            w.mul_((limit / norms.clamp(min=1e-12)).clamp(max=1.0))

    def state_of(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's parameters as a flat dict (w{i}: [in, out], b{i}: [out]) for saving."""
        state = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            state[f"w{i}"] = w[k].detach().clone().contiguous()
            state[f"b{i}"] = b[k, 0].detach().clone().contiguous()
        return state

    @torch.no_grad()
    def load_state_into(self, k: int, state: dict[str, torch.Tensor]) -> None:
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            w[k].copy_(state[f"w{i}"])
            b[k, 0].copy_(state[f"b{i}"])

    @classmethod
    def from_states(
        cls,
        sizes: tuple[int, ...],
        states: list[dict[str, torch.Tensor]],
        dropout: float = 0.0,
        device: torch.device | str = "cpu",
    ) -> StackedMLP:
        model = cls(sizes, len(states), dropout, device)
        for k, state in enumerate(states):
            model.load_state_into(k, state)
        return model

    def num_params_per_model(self) -> int:
        return sum(p[0].numel() for p in self.parameters())
