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
    input_dropout: float = 0.0
    weights: nn.ParameterList
    eval_chunk: int = 8192  # images per forward pass when predicting

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

    @staticmethod
    def _dropout_mask(x: torch.Tensor, generators: list[torch.Generator], rate: float) -> torch.Tensor:
        """Inverted-dropout mask for x [K, ...], each model's slice drawn from that model's generator.

        Why bits: torch's CPU `uniform_` draws one number per element (7-12 ns each here, a third
        of the teacher's matmul time); one 64-bit draw gives four 16-bit numbers instead, each
        compared with round(rate * 2^16). The rate becomes that fraction of 2^16 (0.2 ->
        0.19999695) and kept units are scaled by its exact inverse, so the mask stays unbiased."""
        per_model = x[0].numel()
        threshold = round(rate * 65536)
        bits = torch.empty(x.shape[0], -(-per_model // 4), dtype=torch.int64, device=x.device)
        for k, gen in enumerate(generators):
            bits[k].random_(-(2**63), None, generator=gen)
        # keep where bits >= threshold - 32768: in floats, (bits - that + 1) clamped to [0, 1] is
        # exactly 1 or 0 (integers, exact in fp32), several times faster on a CPU than a bool
        # compare and its conversion
        keep = bits.view(torch.int16)[:, :per_model].reshape(x.shape).to(x.dtype)
        return keep.sub_(threshold - 32769).clamp_(0, 1).mul_(65536 / (65536 - threshold))

    def _drop_inputs(self, x: torch.Tensor, generators: list[torch.Generator] | None) -> torch.Tensor:
        """Inputs with dropout `input_dropout` on the pixels while training."""
        if generators is None or self.input_dropout == 0:
            return x
        return x * self._dropout_mask(x, generators, self.input_dropout)

    @torch.no_grad()
    def max_norm_(self, limit: float) -> None:
        """Rescale every unit's incoming weight vector whose L2 norm exceeds `limit` to `limit`
        (the max-norm constraint of the paper's teacher; biases are not constrained). Dense
        weights are [K, in, out] (a unit's weights are a column); convolutions [K, out, in, h, w]."""
        for w in self.weights:
            dims = (2, 3, 4) if w.dim() == 5 else (1,)
            # from the sum of squares: vector_norm over a non-contiguous axis is several times
            # slower on a CPU; there, checking first skips the rescale when no unit is over
            norms = (w * w).sum(dims, keepdim=True).sqrt_()
            if w.device.type != "cpu" or bool((norms > limit).any()):
                w.mul_((limit / norms.clamp(min=1e-12)).clamp(max=1.0))
