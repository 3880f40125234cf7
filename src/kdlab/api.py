"""The Python API: an experiment is a function call that gives back its numbers.

    import kdlab
    result = kdlab.run("mythical-digit", epochs=2, omit=[3], seeds=3)
    result.table                  # per-class accuracy, a pandas DataFrame
    result.save("runs/x")         # exactly what `kdlab run` writes

Nothing is written or printed unless asked: trained models go to the model store (the per-user
cache unless `models_dir=` says otherwise), so that a rerun reuses them; `progress=True` shows
progress bars (tqdm.auto: they render in notebooks). Bad settings raise `kdlab.KdlabError` with
the one-line message the command line prints. The command line is a thin layer over these calls.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdlab.config import RunOptions, from_args, load_toml
from kdlab.errors import KdlabError
from kdlab.sweep.options import RayOptions, SharedRunOptions

if TYPE_CHECKING:
    import pandas as pd

    from kdlab.docs.reproduce import Outcome
    from kdlab.result import Result

# run options a caller may set: `out` is `Result.save`'s, `quiet` is `progress`'s, `config` the
# argument's; trackers log an output folder, which only `Result.save` and the command line write
RUN_SETTINGS = tuple(
    f.name
    for f in dataclasses.fields(RunOptions)
    if f.name not in ("out", "quiet", "config", "tracker", "tracking_uri")
)


def _split(settings: dict[str, Any], *classes: type) -> list[dict[str, Any]]:
    """`settings` divided among the dataclasses `classes` by field name (the first that has the
    field takes it); a name none of them has is an error naming the ones there are."""
    parts: list[dict[str, Any]] = [{} for _ in classes]
    names = [{f.name for f in dataclasses.fields(cls)} for cls in classes]
    for key, value in settings.items():
        name = key.replace("-", "_")
        for part, fields in zip(parts, names):
            if name in fields:
                part[name] = value
                break
        else:
            known = sorted(set().union(*names))
            raise KdlabError(f"unknown setting {key!r}; settings are {', '.join(known)}")
    return parts


def _build(cls: type, values: dict[str, Any]) -> Any:
    """`cls` from plain values (lists for sequences), validated as command-line values are."""
    return from_args(cls, argparse.Namespace(), values)


def run(
    protocol: str, config: str | Path | None = None, *, progress: bool = False, **settings: Any
) -> Result:
    """Run a protocol (`mythical-digit`, `every-digit`, `hinton2015`, `soft-regularizer`) and
    return its `Result`.

    `settings` are the protocol's settings, named as on the command line with underscores
    (`kdlab run PROTOCOL --help` lists them: epochs, seeds, omit, temperature, alpha, ...), and
    the run options data_dir, models_dir, fresh, device, threads, download, memory_mb.
    `config` is a TOML file of settings; keyword settings win over it.
    """
    from kdlab import protocols

    proto = protocols.get(protocol)
    run_values = {k: v for k, v in settings.items() if k in RUN_SETTINGS}
    experiment = {k: v for k, v in settings.items() if k not in RUN_SETTINGS}
    base = load_toml(Path(config)) if config is not None else {}
    opts = _build(RunOptions, {**run_values, "quiet": not progress})
    return proto.run(_build(proto.settings, {**base, **experiment}), opts)


def sweep(file: str | Path, *, progress: bool = False, **options: Any) -> pd.DataFrame:
    """Run every unfinished point of a sweep file (TOML or YAML, see sweeps/) on Ray and return
    one row per point and seed: the swept values, the metrics and the full config.

    `options`: budget overrides (epochs, seeds, subset), Ray options (address, num_cpus,
    cpus_per_trial, gpus_per_trial, max_retries, out) and run options (data_dir, models_dir,
    device, download, memory_mb). The points' records live in `out` (default: the per-user
    cache), so a rerun runs only the unfinished points.
    """
    from kdlab.reporting.frames import records_frame
    from kdlab.sweep.options import Budget, budget_overrides
    from kdlab.sweep.runner import run_sweep
    from kdlab.sweep.spec import load_spec

    budget, ray_values, shared_values = _split(options, Budget, RayOptions, SharedRunOptions)
    spec = load_spec(Path(file)).with_overrides(budget_overrides(_build(Budget, budget)))
    ray_opts, shared = _ray_and_run_options(ray_values, shared_values, progress, "sweeps", spec.name)
    return records_frame(run_sweep(spec, shared, ray_opts)["rows"])


def tune(file: str | Path, *, progress: bool = False, **options: Any) -> pd.DataFrame:
    """Search a search file's space with Ray Tune (Optuna TPE and ASHA on validation metrics),
    re-evaluate the winner and the default on the test set over fresh seeds, and return one row
    per trial (its parameters, epochs run and validation metrics), best first.

    `options` as for `sweep`, plus the search budget (num_samples, time_budget_s, reeval_seeds).
    """
    from kdlab.reporting.frames import records_frame
    from kdlab.sweep.options import Budget, TuneBudget, budget_overrides
    from kdlab.sweep.tune import load_tune_spec, run_tune

    budget, search, ray_values, shared_values = _split(
        options, Budget, TuneBudget, RayOptions, SharedRunOptions
    )
    spec = load_tune_spec(Path(file), budget_overrides(_build(Budget, budget)), _build(TuneBudget, search))
    ray_opts, shared = _ray_and_run_options(ray_values, shared_values, progress, "tune", spec.name)
    trials = run_tune(spec, shared, ray_opts)["trials"]
    return records_frame([{**t["params"], **{k: v for k, v in t.items() if k != "params"}} for t in trials])


def _ray_and_run_options(ray_values: dict, shared_values: dict, progress: bool, kind: str, name: str):
    """The Ray options (output folder by default under the per-user cache) and the run options
    shared by every trial."""
    from kdlab.data.datasets import cache_dir

    ray_opts = _build(RayOptions, {"out": cache_dir() / kind / name, **ray_values})
    return ray_opts, _build(SharedRunOptions, {**shared_values, "quiet": not progress})


def reproduce(
    study: str | None = None,
    *,
    dry_run: bool = False,
    data_dir: str | Path | None = None,
    models_dir: str | Path | None = None,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Rerun the published studies (docs/studies.toml, read from the current folder: the
    repository's root) whose outputs under docs/ are not current, then refresh the docs' blocks.

    `study` picks one study, or every study under a name. All studies share one model store
    (`models_dir`, default the per-user cache's), so reruns reuse trained models. `say` gets one
    progress line per study; `progress` shows each study's own output (else it goes to a log).
    With `dry_run`, nothing runs or is written.
    """
    from kdlab.data.datasets import cache_dir
    from kdlab.docs import STUDIES
    from kdlab.docs.blocks import refresh
    from kdlab.docs.reproduce import reproduce as run_all
    from kdlab.docs.studies import load_studies, select

    studies, _ = load_studies(_studies_file(STUDIES))
    chosen = select(studies, study)
    store = Path(models_dir) if models_dir is not None else cache_dir() / "models"
    data = Path(data_dir) if data_dir is not None else None
    outcomes = run_all(
        chosen, STUDIES.parent, data, store, cache_dir(), dry_run, progress, say or (lambda _: None)
    )
    if not dry_run:
        refresh()
    return outcomes


def list_studies() -> list[tuple[str, float, str, str]]:
    """(name, expected minutes, page, status) of every published study; the status is
    `current` or why its outputs are not."""
    from kdlab.docs import STUDIES
    from kdlab.docs.reproduce import plan
    from kdlab.docs.studies import load_studies

    studies, _ = load_studies(_studies_file(STUDIES))
    return [(s.name, s.minutes, s.page, why or "current") for s, why in plan(studies, STUDIES.parent)]


def refresh_docs(check: bool = False) -> tuple[list[str], list[str]]:
    """Refresh every include and generated block of the README and docs/ and docs/options.md,
    in the current folder (the repository's root); with `check`, change nothing. Returns (what
    changed, or with `check` what is out of date or broken; the outputs no run has written yet)."""
    from kdlab.docs import STUDIES
    from kdlab.docs.site import problems, update

    _studies_file(STUDIES)
    if check:
        return problems()
    changed = update()
    return changed, problems()[1]


def _studies_file(path: Path) -> Path:
    if not path.is_file():
        raise KdlabError(f"no {path} here: run this in the repository's root")
    return path
