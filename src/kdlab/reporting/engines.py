"""One seeded mythical-digit study under two engines, side by side: the check that a change of
random stream (a new ENGINE_VERSION) left the statistics as they were.

    python -m kdlab.reporting.engines BEFORE AFTER [--names NAME NAME] > table.md

BEFORE and AFTER are two output folders of the same `kdlab run mythical-digit --seeds N`
(their `results.json`, and `reproduce.json` for the engine when `kdlab reproduce` wrote them),
or two folders of such runs, one subfolder per teacher seed (`seed0/`, `seed1/`, ... from
`--seed S`): a study's one teacher is one draw, and its students inherit its luck, so a change
of stream is only judged fairly over several teachers. Runs pair by subfolder name, students
by seed; the teacher then has one value per run. Per student and metric: each engine's mean
over seeds with its 95% interval, the difference of seed i under one engine from seed i under
the other (a paired t-test: the seeds share their number, not their random stream), and
whether each mean lies within the other's interval. The teacher of a single run is shown as its one value.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from kdlab.errors import KdlabError
from kdlab.reporting.stats import mean_ci, paired
from kdlab.reporting.table import cell, markdown

METRICS = (
    ("overall accuracy (%)", "per_seed_accuracy"),
    ("on the omitted class (%)", "per_seed_omitted_accuracy"),
)


def _read_run(folder: Path) -> tuple[dict, object]:
    """Its results and engine version: results.json records it (since engine 2), and
    reproduce.json where `kdlab reproduce` wrote the folder."""
    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError) as err:
        raise KdlabError(f"{folder}: no readable results.json ({err})") from None
    engine = results.get("engine")
    if engine is None:
        with contextlib.suppress(OSError, ValueError):
            engine = json.loads((folder / "reproduce.json").read_text()).get("engine")
    return results, engine


def _pooled(runs: dict[str, dict]) -> dict:
    """Several runs as one: seeds become `run/seed`, each model's per-seed values are
    concatenated in that order (a model a run lacks is left out)."""
    first = next(iter(runs.values()))
    seeds = [f"{name}/{seed}" for name, r in runs.items() for seed in r.get("seeds", [])]
    overall: dict[str, dict] = {}
    for model in first["overall"]:
        if not all(model in r["overall"] for r in runs.values()):
            continue
        overall[model] = {
            key: [v for r in runs.values() for v in (r["overall"][model].get(key) or [])]
            for _, key in METRICS
        }
    return {"seeds": seeds, "overall": overall, "device": first.get("device", "?")}


def load(folder: Path) -> tuple[dict, str]:
    """A run's results, or the pooled results of a folder of runs, and its label: engine (where
    recorded) and device kind."""
    if (folder / "results.json").exists() or not folder.is_dir():
        results, engine = _read_run(folder)
    else:
        subs = sorted(p for p in folder.iterdir() if (p / "results.json").is_file())
        if not subs:
            raise KdlabError(f"{folder}: no results.json in it or in any folder in it")
        read = {p.name: _read_run(p) for p in subs}
        engines = {e for _, e in read.values()}
        devices = {r.get("device") for r, _ in read.values()}
        if len(devices) > 1 or len(engines) > 1:
            raise KdlabError(f"{folder}: its runs are from other devices or engines ({devices}, {engines})")
        results, engine = _pooled({name: r for name, (r, _) in read.items()}), engines.pop()
    label = f"engine {engine if engine is not None else '?'}, {results.get('device', '?')}"
    return results, label


def _within(mean: float, other: float, hw: float | None) -> bool:
    return hw is not None and abs(mean - other) <= hw


def compare(before: dict, after: dict) -> list[dict]:
    """One entry per (model, metric) both runs hold, with every number the table shows."""
    if before.get("seeds") != after.get("seeds"):
        raise KdlabError(f"the runs have other seeds ({before.get('seeds')} and {after.get('seeds')})")
    out = []
    for model, was in before["overall"].items():
        now = after["overall"].get(model)
        if now is None:
            continue
        for metric, key in METRICS:
            a, b = was.get(key), now.get(key)
            if not a or not b or len(a) != len(b):
                continue
            (mean_a, hw_a), (mean_b, hw_b) = mean_ci(a), mean_ci(b)
            diff = paired(b, a)
            out.append({
                "model": model, "metric": metric,
                "before": cell(mean_a, hw_a, 2), "after": cell(mean_b, hw_b, 2),
                "diff": diff, "agree": _within(mean_a, mean_b, hw_b) and _within(mean_b, mean_a, hw_a),
                "seeds": len(a),
            })  # fmt: skip
    return out


def render(before: Path, after: Path, names: tuple[str, str] | None = None) -> str:
    """The table; `names` label the two columns where the folders do not record their engine."""
    (was, label_a), (now, label_b) = load(before), load(after)
    if names:
        label_a, label_b = (f"{n}, {r.get('device', '?')}" for n, r in zip(names, (was, now)))
    entries = compare(was, now)
    rows = []
    for e in entries:
        d = e["diff"]
        many = e["seeds"] > 1
        rows.append([
            e["model"], e["metric"], e["before"], e["after"],
            f"{d.mean:+.2f} ± {d.ci95:.2f}" if many else f"{d.mean:+.2f}",
            f"{d.p_value:.2f}" if d.p_value is not None else "–",
            ("yes" if e["agree"] else "**no**") if many else "–",
        ])  # fmt: skip
    header = [
        "Model", "Metric", label_a, label_b, "after − before (paired, 95% CI)", "p (paired t)",
        "means within each other's 95% CI",
    ]  # fmt: skip
    agree = [e["agree"] for e in entries if e["seeds"] > 1]
    summary = (
        f"{sum(agree)} of {len(agree)} seeded comparisons agree (each mean within the other's 95% "
        f"interval), over seeds {was.get('seeds')}."
    )
    return markdown(header, rows) + "\n" + summary + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    names = None
    if len(args) == 5 and args[2] == "--names":
        names, args = (args[3], args[4]), args[:2]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        sys.stdout.write(render(Path(args[0]), Path(args[1]), names))
    except KdlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
