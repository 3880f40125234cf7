"""`kdlab reproduce`: rerun every published study whose outputs are not current, into docs/.

Each study runs as its own `kdlab` process in a work folder under the cache, named by a hash
of its settings and the code version, so only a rerun of the very same settings ever resumes
there (a sweep's finished points are kept); every study shares one model store, so reruns
reuse trained models. Only after the command succeeds are the files the docs keep copied
beside docs/<name>/ and moved in, the old ones set aside until the move is done; a failed
study leaves docs/<name>/ as it was. `reproduce.json`, written last, records what makes the
outputs current (see `studies`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kdlab.docs.studies import (
    STAMP,
    Study,
    engine_version,
    file_sha256,
    read_stamp,
    staleness,
)
from kdlab.errors import KdlabError
from kdlab.io import atomic_write_json, stable_hash
from kdlab.version import __version__


@dataclass(frozen=True)
class Outcome:
    study: str
    status: str  # current, stale (dry run), done, failed
    detail: str = ""


def work_folder(cache: Path, study: Study) -> Path:
    """Where `study` runs: named by its settings and the code version, so that only the very
    same settings ever resume in it."""
    key = stable_hash([study.settings_sha256(), __version__, engine_version()])
    return cache / "reproduce" / f"{study.name.replace('/', '-')}-{key[:12]}"


def minutes(m: float) -> str:
    return f"~{m:.0f} min" if m < 90 else f"~{m / 60:.1f} h"


def plan(studies: list[Study], docs: Path) -> list[tuple[Study, str | None]]:
    """Each study with the reason it must run (None: its outputs are current)."""
    return [(s, staleness(s, docs)) for s in studies]


def reproduce(
    studies: list[Study],
    docs: Path,
    data_dir: Path | None,
    models_dir: Path,
    cache: Path,
    dry_run: bool = False,
    progress: bool = False,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    """Run, in order, every study of `studies` whose outputs under `docs` are not current;
    with `dry_run`, only say what would run. Failures do not stop the others."""
    steps = plan(studies, docs)
    todo = sum(s.minutes for s, why in steps if why is not None)
    say(f"{len(steps)} studies, {sum(why is not None for _, why in steps)} to run, expected {minutes(todo)}")
    outcomes = []
    for i, (study, why) in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {study.name}"
        if why is None:
            say(f"{head}: current, skipped")
            outcomes.append(Outcome(study.name, "current"))
            continue
        say(f"{head}: expected {minutes(study.minutes)} ({why})")
        if dry_run:
            say(f"    {study.shown()}")
            outcomes.append(Outcome(study.name, "stale", why))
            continue
        try:
            seconds = run_study(study, docs, data_dir, models_dir, work_folder(cache, study), progress)
        except KdlabError as e:
            say(f"{head}: failed: {e}; docs/{study.name} left as it was")
            outcomes.append(Outcome(study.name, "failed", str(e)))
            continue
        say(f"{head}: done in {seconds / 60:.1f} min")
        outcomes.append(Outcome(study.name, "done", f"{seconds:.0f} s"))
    return outcomes


def run_study(
    study: Study, docs: Path, data_dir: Path | None, models_dir: Path, work: Path, progress: bool
) -> float:
    """Run `study` into `work`, then publish its kept files into docs/<name>/; its wall time."""
    work.mkdir(parents=True, exist_ok=True)
    args = [*study.command, "--out", str(work), "--models-dir", str(models_dir)]
    args += ["--data-dir", str(data_dir)] if data_dir is not None else []
    args += [] if progress else ["--quiet"]
    start = time.perf_counter()
    log = work.with_name(work.name + ".log")  # beside the output folder, which must hold only the run
    with open(log, "w") as out:
        sink = None if progress else out
        code = run_child([sys.executable, "-m", "kdlab.cli", *args], sink)
    seconds = time.perf_counter() - start
    if code != 0:
        last = [ln for ln in log.read_text().splitlines() if ln.strip()][-1:] if not progress else []
        said = f": {last[0]}" if last else ""
        raise KdlabError(
            f"kdlab {study.kind} exited with {code}{said} (output: {'above' if progress else log})"
        )
    files = kept_files(study, work)
    stamp = {
        "study": study.name,
        "command": study.shown(),
        "settings_sha256": study.settings_sha256(),
        "defaults": study.defaults(),
        "kdlab": __version__,
        "engine": engine_version(),
        "data_sha256": data_hashes(work),
        "wall_time_s": round(seconds, 1),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "files": {name: file_sha256(work / name) for name in files},
    }
    publish(work, files, docs / study.name, stamp)
    shutil.rmtree(work, ignore_errors=True)
    log.unlink(missing_ok=True)
    return seconds


def run_child(command: list[str], sink) -> int:
    """Run `command` to its end and give its exit code; if reproduce itself is stopped (Ctrl-C,
    or a SIGTERM, which would otherwise leave the study training on alone), the study is
    stopped too before reproduce exits. (SIGTERM is caught only from the main thread, where
    Python lets a handler be set.)"""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main else None
    try:
        child = subprocess.Popen(command, stdout=sink, stderr=sink)
        try:
            return child.wait()
        except BaseException:
            if main:  # a second SIGTERM must not cut the cleanup short
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            raise
    finally:
        if main:  # None: a handler set outside Python, which cannot be put back but as the default
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _exit_on_sigterm(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def kept_files(study: Study, work: Path) -> list[str]:
    """The files under `work` the docs keep, as paths relative to it."""
    found = sorted(
        {p.relative_to(work).as_posix() for pat in study.publish for p in work.glob(pat) if p.is_file()}
    )
    if not found:
        raise KdlabError(f"the run wrote none of {', '.join(study.publish)}")
    return found


def data_hashes(work: Path) -> dict[str, dict[str, str]]:
    """Data set -> file hashes, as the run's results.json files (its points' too) recorded them."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(work.rglob("results.json")):
        data = json.loads(path.read_text())
        if "data_sha256" in data and "config" in data:
            out.setdefault(data["config"]["dataset"], data["data_sha256"])
    return out


def machine() -> dict[str, str | int]:
    """What the wall time was measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")
        )
        cpu = model.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    from kdlab.docs.studies import this_device

    return {
        "cpu": cpu,
        "cores": cores,
        "kernels": this_device(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def publish(work: Path, files: list[str], dest: Path, stamp: dict) -> None:
    """Replace the files of the last published run in `dest` with `files` from `work`: copied
    beside `dest` first, the old ones moved aside and restored if any move fails; files that no
    run of this study published (another page's, say) are left alone. The stamp goes last."""
    dest.mkdir(parents=True, exist_ok=True)
    old_stamp = read_stamp(dest) or {}
    old = sorted(set(old_stamp.get("files", {})) | {f for f in files if (dest / f).exists()})
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    aside = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in files:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / name, staging / name)
        for name in [*old, STAMP]:
            if (dest / name).exists():
                (aside / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(dest / name, aside / name)
                moved.append(name)
        for name in files:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, dest / name)
            placed.append(name)
        atomic_write_json(dest / STAMP, stamp)
    except BaseException:
        for name in placed:
            (dest / name).unlink(missing_ok=True)
        for name in moved:
            os.replace(aside / name, dest / name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
