"""Logging a finished run to TensorBoard or MLflow, read back from the files the run wrote.

The tracker runs after the protocol, from `results.json`, the table, the figures and each
model's `record.json` (its per-epoch history), so it cannot change a number. TensorBoard:
`<dest>/<model>/seed<S>` holds each model's per-epoch loss and accuracy (training and
validation), `<dest>/run` the settings as hyper-parameters with the run's final metrics, the
table as text and the figures as images. MLflow: one run per kdlab run (or sweep point) with
the settings as parameters, the same per-epoch metrics (`<model>/seed<S>/<metric>`), the final
metrics (`final/<metric>`) and the table, results and figures as artifacts.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdlab import KdlabError

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # tracker -> the package it needs
HISTORY = {  # key of a record's per-epoch history -> TensorBoard tag
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
}
ARTIFACTS = ("table.md", "results.json", "report.md")


def require(tracker: str) -> None:
    """A one-line error now, before the run, when the tracker's package is missing."""
    package = PACKAGES[tracker]
    try:
        importlib.import_module(package)
    except ImportError:
        raise KdlabError(
            f"--tracker {tracker} needs the {package} package: pip install 'kdlab[tracking]'"
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
        from kdlab.sweep.metrics import per_seed_metrics

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
    `root`/mlartifacts)."""
    log = read_run(run_dir)
    swept = swept or {}
    if tracker == "tensorboard":
        write_tensorboard(log, root / "tensorboard" / folder, swept)
    else:
        write_mlflow(log, uri or default_uri(root), experiment, run_name, root / "mlartifacts", swept)
