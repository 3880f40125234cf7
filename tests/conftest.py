"""Shared fixtures for the kdlab tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# The repository sits next to a read-only `shared` folder that holds real, verified data sets.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder (`../shared/data` from the repo root); skip if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is missing (real-data tests need it)")
    return SHARED_DATA
