"""Seeds derived from the one a user gives: each role of a run (a model's initialisation, its
data order, a split) draws from its own stream, the same in every version."""

import hashlib


def derive_seed(seed: int, role: str) -> int:
    """A 63-bit seed for one role (init, data order) of one run: stable across versions."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{role}".encode()).digest()[:8], "big") >> 1


def seeds_from(first: int, n: int) -> list[int]:
    """n seeds from `first` on: --seeds 3 extends --seeds 1, whose models a store then reuses."""
    return list(range(first, first + n))
