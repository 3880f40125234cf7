"""What every stacked model family shares: building from saved states, counting parameters and
drawing dropout masks per model, so that a model behaves the same inside a group as alone."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import torch
from torch import nn


def uniform_fan_in_(t: torch.Tensor, fan_in: int, generator: torch.Generator) -> None:
    """PyTorch's default nn.Linear / nn.Conv2d initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    t.uniform_(-bound, bound, generator=generator)


M = TypeVar("M", bound="StackedModule")


class StackedModule(nn.Module):
    """Base of the model families: K models with their parameters stacked on a leading axis.

    A subclass takes `(sizes, num_models, dropout, device, **options)` and provides
    `state_of(k)` and `load_state_into(k, state)`.
    """

    num_models: int
    sizes: tuple[int, ...]
    dropout: float

    def load_state_into(self, k: int, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    @classmethod
    def from_states(
        cls: type[M],
        sizes: tuple[int, ...],
        states: list[dict[str, torch.Tensor]],
        dropout: float = 0.0,
        device: torch.device | str = "cpu",
        **options: Any,
    ) -> M:
        """A stack of len(states) models, model k holding states[k]."""
        model = cls(sizes, len(states), dropout, device, **options)
        for k, state in enumerate(states):
            model.load_state_into(k, state)
        return model

    def num_params_per_model(self) -> int:
        return sum(p[0].numel() for p in self.parameters())

    def _dropout_mask(self, x: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """Inverted-dropout mask for x [K, ...], each model's slice drawn from that model's generator."""
        noise = torch.empty_like(x)
        for k, gen in enumerate(generators):
            noise[k].uniform_(generator=gen)
        return (noise >= self.dropout).to(x.dtype) * (1.0 / (1.0 - self.dropout))
