"""pandas DataFrames of measured tables, for the Python API (pandas is imported only here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def ci_frame(
    means: dict[str, dict[str, float]], ci95: dict[str, dict[str, float | None]], rows: dict[str, str]
) -> pd.DataFrame:
    """One column per key of `means`, rows `rows` (key -> label). Where any interval was
    measured (several seeds), each column becomes two, (column, "mean") and (column, "ci95")."""
    import pandas as pd

    keys, index = list(rows), list(rows.values())
    mean = pd.DataFrame({col: [values[k] for k in keys] for col, values in means.items()}, index=index)
    if all(hw is None for values in ci95.values() for hw in values.values()):
        return mean
    ci = pd.DataFrame(
        {
            col: [float("nan") if values[k] is None else values[k] for k in keys]
            for col, values in ci95.items()
        },
        index=index,
    )
    both = pd.concat({"mean": mean, "ci95": ci}, axis=1).swaplevel(axis=1)
    return both[[(col, part) for col in means for part in ("mean", "ci95")]]


def records_frame(rows: list[dict], index: str | None = None) -> pd.DataFrame:
    """A DataFrame with one row per dict (e.g. one per experiment or per sweep point)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    return frame.set_index(index) if index else frame
