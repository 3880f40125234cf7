"""Logging a finished run to TensorBoard or MLflow, read back from the files the run wrote.

The tracker runs after the protocol, from `results.json`, the table, the figures and each
model's `record.json` (its per-epoch history), so it cannot change a number. TensorBoard:
`<dest>/<model>/seed<S>` holds each model's per-epoch loss and accuracy (training and
validation), `<dest>/run` the settings as hyper-parameters with the run's final metrics, the
table as text and the figures as images. MLflow: one run per kdlab run (or sweep point) with
the settings as parameters, the same per-epoch metrics (`<model>/seed<S>/<metric>`), the final
metrics (`final/<metric>`) and the table, results and figures as artifacts.

A tracking URI that cannot work is refused when the tracker is set up, before the run trains;
a tracker that fails afterwards costs nothing of the run (its files are written first): one
line, and the command's exit code 3.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdlab.errors import KdlabError
from kdlab.result import per_seed_metrics

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # tracker -> the package it needs
HISTORY = {  # key of a record's per-epoch history -> TensorBoard tag
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
}
ARTIFACTS = ("table.md", "results.json", "report.md")
CONNECT_TIMEOUT_S = 2.0  # for a tracking server to accept a connection, before the run
PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}  # by scheme
# a server lost mid-way costs seconds, not MLflow's minutes (7 retries, 120 s each); set them to override
MLFLOW_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


class TrackerError(KdlabError):
    """A tracker that failed after the run, whose results are saved: the command exits with 3."""

    exit_code = 3


def require(tracker: str, uri: str | None = None) -> None:
    """A one-line error now, before the run, when the tracker's package is missing or its
    tracking URI cannot work (see `check_uri`)."""
    package = PACKAGES[tracker]
    try:
        importlib.import_module(package)
    except ImportError:
        raise KdlabError(
            f"--tracker {tracker} needs the {package} package: pip install 'kdlab[tracking]'"
        ) from None
    if tracker == "mlflow" and uri is not None:
        check_uri(uri)


def check_uri(uri: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """An MLflow tracking URI that cannot work is a one-line error, found in seconds rather than
    after the run: a server (http, https, a database) must accept a connection within `timeout`
    s, and a local store (a path, file:, sqlite:) must lie where kdlab may write."""
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower().split("+")[0]
    if scheme in ("", "file"):
        _check_writable(uri, Path(urllib.parse.unquote(parts.path) if scheme else uri), None)
    elif scheme == "sqlite":
        path = uri.split(":///", 1)[1].split("?")[0] if ":///" in uri else ""
        if path and path != ":memory:":
            _check_writable(uri, Path(path).parent, Path(path))
    elif parts.hostname:
        try:
            port = parts.port or PORTS.get(scheme)
        except ValueError:
            raise KdlabError(f"--tracking-uri {uri} has an invalid port") from None
        if port is not None:
            _check_server(uri, scheme, parts.hostname, port, timeout)


def _check_writable(uri: str, folder: Path, file: Path | None) -> None:
    """MLflow creates a local store's folders: the nearest one there is must be a folder kdlab
    may write in, and the store's file (`file`, if any) a file it may write."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise KdlabError(f"--tracking-uri {uri}: {existing} is not a folder kdlab may write in")
    if file is not None and file.exists() and (not file.is_file() or not os.access(file, os.W_OK)):
        raise KdlabError(f"--tracking-uri {uri}: {file} is not a file kdlab may write")


def _check_server(uri: str, scheme: str, host: str, port: int, timeout: float) -> None:
    """Something must accept a connection at `host`:`port` (or at the proxy the environment
    sends the requests through) within `timeout` s."""
    proxy = urllib.request.getproxies().get(scheme) if scheme in ("http", "https") else None
    if proxy and not urllib.request.proxy_bypass(host):
        through = urllib.parse.urlsplit(proxy)
        host, port = through.hostname or host, through.port or PORTS.get(through.scheme, 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise KdlabError(
            f"--tracking-uri {uri}: nothing answers at {host}:{port} ({reason}); "
            "start the tracking server or choose another --tracking-uri"
        ) from None


@dataclass
class RunLog:
    """What a finished run produced, as a tracker logs it."""

    params: dict[str, str | float | int | bool]
    histories: dict[tuple[str, int], list[dict]]  # (model, seed) -> per-epoch metrics
    metrics: dict[str, float]  # final metrics of the run
    table: str
    figures: list[Path]
    files: list[Path]


def _param(value: Any) -> str | float | int | bool:
    if isinstance(value, (bool, int, float, str)):
        return value
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def final_metrics(result: dict) -> dict[str, float]:
    """Mean over seeds of the per-seed metrics (a sweepable protocol's), else the teacher's
    accuracy."""
    if "metrics" in result:
        rows = per_seed_metrics(result)
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "seed"}
    if "teacher_accuracy" in result:
        return {"teacher_accuracy": float(result["teacher_accuracy"])}
    return {}


def read_run(run_dir: Path) -> RunLog:
    """The run in `run_dir` (its results.json and the records of the models it lists)."""
    try:
        result = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError) as e:
        raise KdlabError(f"cannot read the results of {run_dir} to log them: {e}") from e
    histories = {}
    for name, models in result.get("models", {}).items():
        for model in models:
            record = json.loads((run_dir / model["folder"] / "record.json").read_text())
            histories[(name, model["seed"])] = record["history"]
    table = run_dir / "table.md"
    return RunLog(
        params={k: _param(v) for k, v in result.get("config", {}).items()},
        histories=histories,
        metrics=final_metrics(result),
        table=table.read_text() if table.is_file() else "",
        figures=sorted((run_dir / "figures").glob("*.png")),
        files=[run_dir / f for f in ARTIFACTS if (run_dir / f).is_file()],
    )


def slug(name: str) -> str:
    """A model's name as a folder and metric name ('KD No3+B' -> 'KD_No3-B')."""
    return re.sub(r"[^\w.-]", "-", name.replace(" ", "_"))


def write_tensorboard(log: RunLog, dest: Path, swept: dict[str, Any]) -> None:
    """Event files under `dest`, written beside it and renamed into place (a rerun replaces them)."""
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        for (name, seed), history in log.histories.items():
            with SummaryWriter(str(tmp / slug(name) / f"seed{seed}")) as writer:
                for row in history:
                    for key, tag in HISTORY.items():
                        writer.add_scalar(tag, row[key], row["epoch"])
        with SummaryWriter(str(tmp / "run")) as writer:
            settings = {**log.params, **{k: _param(v) for k, v in swept.items()}}
            for summary in hparams(settings, {f"final/{k}": v for k, v in log.metrics.items()}):
                writer.file_writer.add_summary(summary)
            for key, value in log.metrics.items():
                writer.add_scalar(f"final/{key}", value, 0)
            writer.add_text("table", log.table, 0)
            for figure in log.figures:
                with Image.open(figure) as image:
                    pixels = np.asarray(image.convert("RGB"))
                writer.add_image(f"figures/{figure.stem}", pixels, 0, dataformats="HWC")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def default_uri(folder: Path) -> str:
    """A local SQLite store in `folder` (MLflow 3's recommended local backend)."""
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def write_mlflow(
    log: RunLog, uri: str, experiment: str, run_name: str, artifacts: Path, swept: dict[str, Any]
) -> str:
    """One MLflow run holding the whole kdlab run; its id. New experiments keep their artifacts
    in the folder `artifacts`."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its database set-up chatter
    for name, value in MLFLOW_HTTP.items():
        os.environ.setdefault(name, value)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found is not None
            else client.create_experiment(experiment, artifact_location=artifacts.resolve().as_uri())
        )
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
        now = int(time.time() * 1000)
        params = {**log.params, **{f"swept.{k}": _param(v) for k, v in swept.items()}}
        metrics = [
            Metric(f"{slug(name)}/seed{seed}/{key}", float(row[key]), now, row["epoch"])
            for (name, seed), history in log.histories.items()
            for row in history
            for key in HISTORY
        ]
        metrics += [Metric(f"final/{k}", v, now, 0) for k, v in log.metrics.items()]
        param_list = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, max(len(metrics), len(param_list)), 100):
            client.log_batch(run_id, metrics=metrics[i : i + 100], params=param_list[i : i + 100])
        for path in log.files:
            client.log_artifact(run_id, str(path))
        for path in log.figures:
            client.log_artifact(run_id, str(path), "figures")
        client.set_terminated(run_id)
    except MlflowException as e:
        raise KdlabError(f"MLflow ({uri}): {str(e).splitlines()[0]}") from None
    return run_id


def log_run(
    tracker: str,
    run_dir: Path,
    root: Path,
    uri: str | None,
    experiment: str,
    run_name: str,
    swept: dict[str, Any] | None = None,
    folder: str = "",
) -> None:
    """Log the finished run in `run_dir`: TensorBoard event files under `root`/tensorboard (in
    its `folder` there for a sweep point, one with `swept` values), or an MLflow run in
    `experiment` (default store: `default_uri(root)`, artifacts of new experiments in
    `root`/mlartifacts). Whatever fails is a one-line `TrackerError`: the run's files are
    written before, and stay."""
    try:
        log = read_run(run_dir)
        if tracker == "tensorboard":
            write_tensorboard(log, root / "tensorboard" / folder, swept or {})
        else:
            write_mlflow(
                log, uri or default_uri(root), experiment, run_name, root / "mlartifacts", swept or {}
            )
    except Exception as e:
        text = str(e) if isinstance(e, KdlabError) else f"{type(e).__name__}: {e}"
        raise TrackerError(
            f"the run's results are saved in {run_dir}/, but --tracker {tracker} failed: "
            f"{(text.strip().splitlines() or [''])[0]}"
        ) from None
