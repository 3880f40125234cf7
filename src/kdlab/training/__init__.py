"""The training core: one loss, one optimiser, one loop, one store of finished models."""
