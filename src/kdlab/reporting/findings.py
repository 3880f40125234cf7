"""Statements read off the measured numbers, so that the report never claims what it did not see."""

from __future__ import annotations


def detect_overfitting(history: list[dict], tolerance: float = 0.02) -> str | None:
    """A sentence if validation loss rose (> tolerance, relative) past its minimum while
    training loss kept falling, else None."""
    val = [h["val_loss"] for h in history]
    train = [h["train_loss"] for h in history]
    best = min(range(len(val)), key=val.__getitem__)
    last = len(val) - 1
    if best < last and val[last] > val[best] * (1 + tolerance) and train[last] < train[best]:
        return (
            f"validation loss rose from {val[best]:.4f} (epoch {best + 1}) to {val[last]:.4f} "
            f"(epoch {last + 1}) while training loss fell from {train[best]:.4f} to "
            f"{train[last]:.4f}"
        )
    return None


def class_phrase(names: list[str]) -> str:
    """ "class 3", "classes 3 and 8", "classes 3, 5 and 8": how the findings name classes."""
    if len(names) == 1:
        return f"class {names[0]}"
    return f"classes {', '.join(names[:-1])} and {names[-1]}"
