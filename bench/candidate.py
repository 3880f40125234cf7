"""A candidate next engine, for measuring before it is adopted: three changes, each of which
changes trained weights (so adopting them bumps the store's ENGINE_VERSION and regenerates every
published number).

- Dropout masks from random bits: one 64-bit draw of the model's generator gives four 16-bit
  numbers, each compared with round(rate * 2^16); torch's `uniform_` draws one number per
  element. The dropout rate becomes that fraction of 2^16 (0.2 -> 0.19999695), and the kept
  units are scaled by its exact inverse, so the mask stays unbiased. Each model keeps its own
  generator, so a model in a group is still the model alone.
- Max-norm from the sum of squares (`linalg.vector_norm` over a non-contiguous axis is several
  times slower on a CPU here), rescaling only when some column is over the limit.
- Every batch a multiple of 16 rows: an epoch's last, partial batch is cut down to one (at
  most 15 of its images wait for the next epoch's order). Each model's slab of every product
  then starts 64 bytes after the last, as a model's own tensors do, and MKL rounds a model in a
  group as it rounds it alone (bench/group_position.py: a batch of 109 rows does not).

Tried and left out, as they gained nothing measurable here: SGD's step as `torch._foreach_*`
calls (on a CPU those loop over the tensors); the MLP's training pass as one autograd function
with its backward written out (per layer the weight, bias and input gradients through ReLU and
dropout as one gate, in place): its gradients were bit for bit autograd's, and in ten
interleaved repeats its teacher and student steps were no faster (23.9 against 23.5 ms, 6.5
against 6.2 ms), so autograd's bookkeeping is not where the time goes.

`apply()` swaps the changes into kdlab for the current process only; `--candidate` of
bench/profile_step.py, bench_engine.py and bench_protocol.py measures the engine with them.
"""

from __future__ import annotations

import torch

from kdlab.models.stacked import StackedModule
from kdlab.training import engine

ALIGN = 16  # rows: 16 x 4 bytes, the 64-byte alignment of a tensor of its own
plain_batches = engine.batches


def dropout_mask_bits(x: torch.Tensor, generators: list[torch.Generator], rate: float) -> torch.Tensor:
    """Inverted-dropout mask for x [K, ...] from 16-bit slices of each model's 64-bit draws."""
    per_model = x[0].numel()
    threshold = round(rate * 65536)
    bits = torch.empty(x.shape[0], -(-per_model // 4), dtype=torch.int64, device=x.device)
    for k, gen in enumerate(generators):
        bits[k].random_(-(2**63), None, generator=gen)
    keep = bits.view(torch.int16)[:, :per_model].reshape(x.shape) >= threshold - 32768
    return keep.to(x.dtype).mul_(65536 / (65536 - threshold))


@torch.no_grad()
def max_norm_squares_(self: StackedModule, limit: float) -> None:
    """`StackedModule.max_norm_` with each column's norm from its sum of squares."""
    for w in self.weights:
        dims = (2, 3, 4) if w.dim() == 5 else (1,)
        norms = (w * w).sum(dims, keepdim=True).sqrt_()
        if bool((norms > limit).any()):
            w.mul_((limit / norms.clamp(min=1e-12)).clamp(max=1.0))


def aligned_batches(n: int, batch_size: int) -> list[slice]:
    """`engine.batches` with the last batch cut to a multiple of 16 rows (a set of fewer than 16
    rows is one batch as it is)."""
    if n < ALIGN:
        return [slice(0, n)]
    out = plain_batches(n, batch_size)
    last = out.pop()
    rows = (last.stop - last.start) // ALIGN * ALIGN
    return [*out, slice(last.start, last.start + rows)] if rows else out


def apply() -> None:
    """Use the candidate's changes in this process."""
    StackedModule._dropout_mask = staticmethod(dropout_mask_bits)
    StackedModule.max_norm_ = max_norm_squares_
    engine.batches = aligned_batches
