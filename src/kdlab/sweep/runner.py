"""Running a sweep on Ray: every point is one Ray task running one protocol run.

Before the points fan out, each distinct teacher is trained once (one task per teacher) into
the sweep's content-addressed model store; every point then finds it there, as it finds any
student another point already trained. A point is finished once its record is written
(atomically) under `records/`: a rerun skips it. A task whose worker dies is run again by
Ray (`max_retries`); a finished point is never lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdlab import protocols, tracking
from kdlab.config import RunOptions, to_dict
from kdlab.data.datasets import load_dataset
from kdlab.errors import KdlabError
from kdlab.io import atomic_write_json, atomic_write_text, holding_claims
from kdlab.protocols.common import device_of
from kdlab.protocols.contract import open_run
from kdlab.protocols.study import open_study, teacher_job
from kdlab.result import per_seed_metrics
from kdlab.sweep import require_ray
from kdlab.sweep.options import RayOptions, trial_options
from kdlab.sweep.plots import sweep_figures
from kdlab.sweep.spec import Point, SweepSpec, point_id
from kdlab.sweep.table import summary_markdown, table_rows, write_table


@holding_claims()  # a worker outlives its task: the task's folder is given back when it ends
def train_teacher(protocol: str, config: Any, opts: RunOptions) -> str:
    """Train (or find) the teacher of `config` in the shared store; its key."""
    lab, settings = open_run(protocol, config.teacher_settings(), opts)
    return open_study(lab, settings).teacher_key


@holding_claims()
def run_point(protocol: str, config: Any, opts: RunOptions, worker_file: Path) -> dict:
    """One point: the protocol run in its own folder; the per-seed metrics and provenance.
    `worker_file` says which process runs it (to find or stop it); its printout goes to a .log
    beside it."""
    worker = {"pid": os.getpid(), "node": platform.node()}
    atomic_write_json(worker_file, {**worker, "start": time.time()})
    log = worker_file.with_suffix(".log")
    with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        result = protocols.get(protocol).run(config, opts)
        result.save(opts.out)
    return {
        "rows": per_seed_metrics(result.data),
        # protocols of one teacher: whether it came from the store (None: a protocol without one)
        "teacher_reused": result.data["models"]["Teacher"][0]["reused"]
        if "Teacher" in result.data["models"]
        else None,
        "wall_time_s": result.data["wall_time_s"],
        "worker": worker,
    }


@dataclass
class Paths:
    out: Path
    models: Path

    @property
    def records(self) -> Path:
        return self.out / "records"

    def point(self, pid: str) -> Path:
        return self.out / "points" / pid

    def record(self, pid: str) -> Path:
        return self.records / f"{pid}.json"

    def worker(self, pid: str) -> Path:
        return self.out / "workers" / f"{pid}.json"


def sweep_paths(spec: SweepSpec, shared: Any, ray_opts: RayOptions) -> Paths:
    """Absolute paths: the workers may run in another folder (or on another machine that
    mounts the same file system)."""
    out = (ray_opts.out or Path("runs") / "sweeps" / spec.name).resolve()
    return Paths(out, (shared.models_dir or out / "models").resolve())


def absolute_data_dir(shared: Any) -> Any:
    return dataclasses.replace(shared, data_dir=shared.data_dir.resolve()) if shared.data_dir else shared


def connect(ray_opts: RayOptions, quiet: bool):
    """Ray started in-process on this machine, or the cluster at `--address`; returns
    (ray, whether we started it)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray, False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": not quiet,
        "logging_level": "ERROR",
    }
    kwargs["address"] = ray_opts.address or "local"  # "local": a new instance, even if one runs here
    if not ray_opts.address and ray_opts.num_cpus:
        kwargs["num_cpus"] = ray_opts.num_cpus
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise KdlabError(f"cannot start or reach Ray ({ray_opts.address or 'local'}): {e}") from None
    try:
        check_resources(ray.cluster_resources(), ray_opts)
    except KdlabError:
        ray.shutdown()
        raise
    return ray, True


def check_resources(available: dict[str, float], ray_opts: RayOptions) -> None:
    """A trial asking for more than the whole cluster has would wait forever: say so now."""
    for name, wanted, flag in (("CPU", ray_opts.cpus_per_trial, "--cpus-per-trial"),
                               ("GPU", ray_opts.gpus_per_trial, "--gpus-per-trial")):  # fmt: skip
        if wanted > available.get(name, 0.0):
            raise KdlabError(
                f"{flag} {wanted:g}, but the Ray cluster has {available.get(name, 0.0):g} {name}(s)"
            )


def remote(ray, fn, ray_opts: RayOptions, **extra):
    """`fn` as a Ray task with the declared resources per trial and retries on worker death."""
    return ray.remote(fn).options(
        num_cpus=ray_opts.cpus_per_trial,
        num_gpus=ray_opts.gpus_per_trial,
        max_retries=ray_opts.max_retries,
        **extra,
    )


def train_teachers(ray, protocol: str, configs: list, shared, ray_opts, out: Path, models: Path, say) -> None:
    """One task per distinct teacher among `configs`, all before any point runs; teachers are
    told apart by the key the model store gives them (the data sets are read here for it)."""
    teachers: dict[str, Any] = {}
    data = {}
    for config in configs:
        if config.dataset not in data:
            data[config.dataset] = load_dataset(config.dataset, shared.data_dir, shared.download, quiet=True)
        settings = config.teacher_settings().for_data(data[config.dataset].image_shape)
        teachers.setdefault(teacher_job(settings, data[config.dataset], device_of(shared.device)).key, config)
    task = remote(ray, train_teacher, ray_opts)
    # each in a folder of its own settings: a later sweep's teacher task never meets a folder
    # claimed by other settings
    folders = [out / "teachers" / point_id(config) for config in teachers.values()]
    refs = [
        task.remote(protocol, config, trial_options(shared, ray_opts, folder, models))
        for config, folder in zip(teachers.values(), folders)
    ]
    start = time.perf_counter()
    ray.get(refs)
    say(f"{len(refs)} teacher(s) ready in {time.perf_counter() - start:.1f} s")


def load_records(points: list[Point], paths: Paths) -> dict[str, dict]:
    """The finished points' records (a damaged record counts as not finished)."""
    records = {}
    for point in points:
        with contextlib.suppress(OSError, ValueError):
            records[point.id] = json.loads(paths.record(point.id).read_text())
    return records


def describe(point: Point) -> str:
    return " ".join(f"{k}={v}" for k, v in point.params.items()) or point.id


def publish(
    spec: SweepSpec, points: list[Point], records: dict[str, dict], paths: Paths
) -> tuple[str, list[dict]]:
    """The results table, summary and figures from every finished point, in point order; the
    summary and the table's rows."""
    done = [records[p.id] for p in points if p.id in records]
    rows = table_rows(done, spec.swept, spec.metrics)
    write_table(paths.out, rows)
    declared = {m.name: m for m in protocols.get(spec.protocol).metrics}
    metrics = tuple(declared[name] for name in spec.metrics)
    summary = summary_markdown(done, spec.swept, metrics) if done else ""
    atomic_write_text(paths.out / "summary.md", summary)
    if done:
        sweep_figures(done, spec.swept, spec.metrics, paths.out / "figures")
    return summary, rows


def run_sweep(spec: SweepSpec, shared: Any, ray_opts: RayOptions) -> dict:
    """Run every unfinished point of `spec` on Ray; returns the summary and what ran."""
    points = spec.points()
    shared = absolute_data_dir(shared)
    if shared.tracker:
        tracking.require(shared.tracker, shared.tracking_uri)
    paths = sweep_paths(spec, shared, ray_opts)
    say = (lambda _msg: None) if shared.quiet else print
    atomic_write_json(
        paths.out / "sweep.json", {**dataclasses.asdict(spec), "points": [p.id for p in points]}
    )
    records = load_records(points, paths)
    todo = [p for p in points if p.id not in records]
    say(
        f"sweep {spec.name}: {len(points)} point(s), "
        f"{len(points) - len(todo)} finished before, {len(todo)} to run"
    )
    failures = []
    if todo:
        ray, started = connect(ray_opts, shared.quiet)
        try:
            configs = [p.config for p in todo]
            if hasattr(configs[0], "teacher_settings"):  # protocols of one teacher and its students
                train_teachers(ray, spec.protocol, configs, shared, ray_opts, paths.out, paths.models, say)
            failures = run_points(ray, spec, todo, shared, ray_opts, paths, records, say)
        finally:
            if started:
                ray.shutdown()
    summary, rows = publish(spec, points, records, paths)
    say(f"\n{summary}\nwrote {paths.out}/ (results.csv, results.jsonl, summary.md, figures/)")
    if failures:
        raise KdlabError(
            f"{len(failures)} point(s) failed (see above); a rerun runs only the unfinished points"
        )
    return {"out": paths.out, "points": len(points), "ran": len(todo), "summary": summary, "rows": rows}


def run_points(ray, spec, todo: list[Point], shared, ray_opts, paths: Paths, records: dict, say) -> list[str]:
    """Submit every point, record each one as it finishes; the failures, described."""
    task = remote(ray, run_point, ray_opts)
    pending = {}
    for p in todo:
        opts = trial_options(shared, ray_opts, paths.point(p.id), paths.models)
        pending[task.remote(spec.protocol, p.config, opts, paths.worker(p.id))] = p
    failures = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        point = pending.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
        except Exception as e:  # a point that fails (after its retries) does not stop the others
            failures.append(f"{describe(point)}: {str(e).strip().splitlines()[-1]}")
            say(f"failed: {failures[-1]}")
            continue
        record = {"point": point.id, "params": point.params, "config": to_dict(point.config), **outcome}
        atomic_write_json(paths.record(point.id), record)
        records[point.id] = record
        if shared.tracker:  # each point its own run, with its swept values
            tracking.log_run(
                shared.tracker,
                paths.point(point.id),
                paths.out,
                shared.tracking_uri,
                f"sweep-{spec.name}",
                describe(point),
                point.params,
                point.id,
            )
        done = len(todo) - len(pending)
        say(f"[{done}/{len(todo)}] {describe(point)} ({outcome['wall_time_s']:.1f} s)")
    return failures
