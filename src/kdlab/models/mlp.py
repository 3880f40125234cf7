"""K same-shaped MLPs whose parameters are stacked along a leading model axis.

One `torch.baddbmm` per layer runs all K models at once; a single model is a group of one.
Every model draws its initialisation and its dropout masks from its own generator, so a
model trained inside a group gets the same numbers as the same model trained alone.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from kdlab.models.stacked import StackedModule, uniform_fan_in_


class StackedMLP(StackedModule):
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
                uniform_fan_in_(w[k], w.shape[1], gen)
                uniform_fan_in_(b[k], w.shape[1], gen)

    def forward(self, x: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """Logits [K, B, C] for inputs [K, B, D]; dropout is on when `generators` are given."""
        last = len(self.weights) - 1
        x = self._drop_inputs(x, generators)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                # in place, mask before ReLU: baddbmm's backward keeps its inputs, not its output,
                # and a mask of 0 or 1/(1-p) gives relu(x * m) == relu(x) * m to the bit, forward
                # and backward, with two fewer activation-sized tensors per layer
                if generators is not None and self.dropout > 0:
                    x.mul_(self._dropout_mask(x, generators, self.dropout))
                x = torch.relu_(x)
        return x

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
