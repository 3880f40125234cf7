"""Model families, stored with a leading model axis so that a group of K models trains as one."""

from __future__ import annotations

import torch

from kdlab import choices
from kdlab.models.cnn import StackedCNN
from kdlab.models.mlp import StackedMLP
from kdlab.models.stacked import StackedModule

FAMILIES: dict[str, type[StackedModule]] = dict(zip(choices.FAMILIES, (StackedMLP, StackedCNN), strict=True))


def _options(arch: str, image_shape: tuple[int, int, int] | None) -> dict:
    """What a family needs beyond its sizes: the CNN convolves images of a known shape."""
    if arch not in FAMILIES:
        raise ValueError(f"unknown model family {arch!r}; choose from {', '.join(FAMILIES)}")
    if arch != "cnn":
        return {}
    if image_shape is None:
        raise ValueError("the cnn needs the image shape")
    return {"image_shape": tuple(image_shape)}


def build_model(
    arch: str,
    sizes: tuple[int, ...],
    num_models: int,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    image_shape: tuple[int, int, int] | None = None,
    device: torch.device | str = "cpu",
) -> StackedModule:
    """K untrained models of family `arch` (mlp for any input, cnn for images)."""
    options = _options(arch, image_shape)
    return FAMILIES[arch](sizes, num_models, dropout, device, input_dropout=input_dropout, **options)


def from_states(
    arch: str,
    sizes: tuple[int, ...],
    states: list[dict[str, torch.Tensor]],
    image_shape: tuple[int, int, int] | None = None,
    device: torch.device | str = "cpu",
) -> StackedModule:
    """Saved models of one family and shape as one stack, for evaluation."""
    options = _options(arch, image_shape)
    return FAMILIES[arch].from_states(sizes, states, device=device, **options)


__all__ = ["FAMILIES", "StackedCNN", "StackedMLP", "StackedModule", "build_model", "from_states"]
