"""Random translation of whole batches of images, the paper's input jitter.

Every image moves by its own (dy, dx), each in [-max_shift, max_shift], drawn from its
model's generator. One gather moves the whole batch: source indices are clamped to the image,
so the border pixels are repeated into the gap (for MNIST-like data, blank background).
"""

from __future__ import annotations

import torch


def translate(
    x: torch.Tensor, image_shape: tuple[int, int, int], max_shift: int, generators: list[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images x [K, B, C*H*W] (flattened channel-major), each shifted at random; same shape,
    with the shifts [2, K, B] (dy, dx) drawn."""
    shifts = torch.stack(
        [
            torch.randint(-max_shift, max_shift + 1, (2, x.shape[1]), generator=g, device=x.device)
            for g in generators
        ],
        dim=1,
    )  # [2, K, B]
    return move(x, image_shape, shifts), shifts


def move(x: torch.Tensor, image_shape: tuple[int, int, int], shifts: torch.Tensor) -> torch.Tensor:
    """Images x [K, B, C*H*W], image (k, b) shifted by shifts[:, k, b] = (dy, dx)."""
    k, b, _ = x.shape
    c, h, w = image_shape
    rows = (torch.arange(h, device=x.device) - shifts[0, ..., None]).clamp(0, h - 1)  # [K, B, H]
    cols = (torch.arange(w, device=x.device) - shifts[1, ..., None]).clamp(0, w - 1)  # [K, B, W]
    pixel = rows[..., :, None] * w + cols[..., None, :]  # [K, B, H, W]: source pixel of each target
    index = (pixel.view(k, b, 1, h * w) + h * w * torch.arange(c, device=x.device).view(1, 1, c, 1)).view(
        k, b, c * h * w
    )
    return torch.gather(x, 2, index)


def view_index(shifts: torch.Tensor, max_shift: int) -> torch.Tensor:
    """The number of each shift (dy, dx) among the (2 max_shift + 1)^2 of `all_shifts`."""
    side = 2 * max_shift + 1
    return (shifts[0] + max_shift) * side + (shifts[1] + max_shift)


def all_shifts(max_shift: int) -> list[tuple[int, int]]:
    """Every (dy, dx) `translate` can draw, in the order of `view_index`."""
    span = range(-max_shift, max_shift + 1)
    return [(dy, dx) for dy in span for dx in span]
