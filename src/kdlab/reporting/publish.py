"""The last step of every protocol: results.json written, the summary printed."""

from __future__ import annotations

from pathlib import Path

from kdlab.io import atomic_write_json


def publish(out: Path, result: dict, tables: list[str], files: str, quiet: bool) -> dict:
    """Write `result` (with its findings) to results.json, then print the tables and findings."""
    atomic_write_json(out / "results.json", result)
    if not quiet:
        print()  # past the progress bars
    for table in tables:
        print(table)
    for line in result["findings"]:
        print(f"- {line}")
    print(f"\nwrote {out}/ ({files}) in {result['wall_time_s']:.1f} s")
    return result
