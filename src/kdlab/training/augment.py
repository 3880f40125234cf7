"""Random translation of whole batches of images, the paper's input jitter.

Every image moves by its own (dy, dx), each in [-max_shift, max_shift], drawn from its
model's generator. One gather moves the whole batch: source indices are clamped to the image,
so the border pixels are repeated into the gap (for MNIST-like data, blank background).
"""

from __future__ import annotations

import torch


def translate(
    x: torch.Tensor, image_shape: tuple[int, int, int], max_shift: int, generators: list[torch.Generator]
) -> torch.Tensor:
    """Images x [K, B, C*H*W] (flattened channel-major), each shifted at random; same shape."""
    k, b, _ = x.shape
    c, h, w = image_shape
    shifts = torch.stack(
        [torch.randint(-max_shift, max_shift + 1, (2, b), generator=g, device=x.device) for g in generators],
        dim=1,
    )  # [2, K, B]
    rows = (torch.arange(h, device=x.device) - shifts[0, ..., None]).clamp(0, h - 1)  # [K, B, H]
    cols = (torch.arange(w, device=x.device) - shifts[1, ..., None]).clamp(0, w - 1)  # [K, B, W]
    pixel = rows[..., :, None] * w + cols[..., None, :]  # [K, B, H, W]: source pixel of each target
    index = (pixel.view(k, b, 1, h * w) + h * w * torch.arange(c, device=x.device).view(1, 1, c, 1)).view(
        k, b, c * h * w
    )
    return torch.gather(x, 2, index)
