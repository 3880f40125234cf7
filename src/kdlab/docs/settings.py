"""Settings of `kdlab reproduce` and `kdlab docs`: dataclasses like every other command's, so
their options are generated and listed on docs/options.md too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdlab.config import check_fields, option


@dataclass(frozen=True)
class ReproduceOptions:
    """How `kdlab reproduce` reruns the published studies of docs/studies.toml into docs/."""

    study: str | None = option(
        None, "one study, or every study under a name (mythical-digit: all its variants); default: all"
    )
    dry_run: bool = option(False, "say which studies would run and their commands; run nothing")
    list: bool = option(False, "list the studies with their expected time, page and status; run nothing")
    data_dir: Path | None = option(None, "root holding one folder per data set (mnist/, ...)")
    models_dir: Path | None = option(
        None, "the model store every study shares (default: the per-user cache's, or $KDLAB_CACHE/models)"
    )
    quiet: bool = option(False, "each study's own output goes to a log under the cache, not the terminal")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class DocsOptions:
    """How `kdlab docs` refreshes the pages: every include and generated block from the files the
    runs wrote, and docs/options.md from the settings dataclasses."""

    check: bool = option(False, "change nothing; list what is out of date, missing or broken (exit 1 if any)")

    def __post_init__(self) -> None:
        check_fields(self)
