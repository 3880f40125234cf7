"""--tracker tensorboard|mlflow: what was logged, read back with each tracker's own reader,
equals what the run wrote (results.json and each model's record.json)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdlab.cli import main
from kdlab.data.datasets import MNIST, _load_idx, locate
from kdlab.tracking import slug

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SMALL = ["--epochs", "2", "--seeds", "2", "--teacher-hidden", "100", "--student-hidden", "50", "--quiet"]


@pytest.fixture(scope="module")
def npz(shared_data, tmp_path_factory) -> Path:
    """2000 training and 1000 test images of real MNIST, classes named by words."""
    arrays, _, _ = _load_idx(MNIST, locate(MNIST, shared_data, False, True))
    (x, y), (xt, yt) = arrays["train"], arrays["test"]
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(
        path, x_train=x[:2000], y_train=y[:2000], x_test=xt[:1000], y_test=yt[:1000], classes=np.array(NAMES)
    )
    return path


@pytest.fixture(scope="module")
def tracked(npz, tmp_path_factory) -> Path:
    """One run logged to TensorBoard, then (its models reused) to MLflow's default store."""
    for package in ("tensorboard", "mlflow"):  # the tracking extra, which `make test` installs
        pytest.importorskip(package, reason="pip install 'kdlab[tracking]'")
    out = tmp_path_factory.mktemp("run") / "out"
    args = ["run", "mythical-digit", "--dataset", str(npz), "--omit", "three", "--out", str(out), *SMALL]
    assert main([*args, "--tracker", "tensorboard"]) == 0
    assert main([*args, "--tracker", "mlflow"]) == 0
    return out


def histories(out: Path) -> dict[tuple[str, int], list[dict]]:
    result = json.loads((out / "results.json").read_text())
    found = {}
    for name, models in result["models"].items():
        for m in models:
            found[(name, m["seed"])] = json.loads((out / m["folder"] / "record.json").read_text())["history"]
    return found


def expected_final(out: Path) -> dict[str, float]:
    """Two final metrics straight from results.json: the mean over seeds."""
    result = json.loads((out / "results.json").read_text())
    return {
        "kd_omitted_after": float(np.mean(result["calibration"]["KD Nothree"]["fixed"]["omitted"])),
        "kd_accuracy": float(np.mean(result["overall"]["KD"]["per_seed_accuracy"])),
    }


def test_tensorboard_logs_match_the_run(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    tb = tracked / "tensorboard"
    runs = histories(tracked)
    assert len(runs) == 1 + 4 * 2  # the teacher, and four student columns of two seeds
    for (name, seed), history in runs.items():
        acc = EventAccumulator(str(tb / slug(name) / f"seed{seed}"))
        acc.Reload()
        for key, tag in (("train_loss", "loss/train"), ("val_loss", "loss/val"), ("val_acc", "accuracy/val")):
            events = acc.Scalars(tag)
            assert [e.step for e in events] == [1, 2]
            assert [e.value for e in events] == pytest.approx([h[key] for h in history], rel=1e-6)
    run = EventAccumulator(str(tb / "run"), size_guidance={"images": 0, "tensors": 0})
    run.Reload()
    for key, value in expected_final(tracked).items():
        assert run.Scalars(f"final/{key}")[0].value == pytest.approx(value, rel=1e-6)
    text = run.Tensors("table/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text == (tracked / "table.md").read_text()
    for png in (tracked / "figures").glob("*.png"):
        logged = run.Images(f"figures/{png.stem}")[0]
        with Image.open(png) as image:
            assert (logged.width, logged.height) == image.size
    content = run.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["temperature"].number_value == 4.0 and hparams["omit"].string_value == "three"
    assert hparams["dataset"].string_value.endswith("digits.npz")


def test_tensorboard_rerun_replaces_its_logs(npz, tracked):
    """A rerun rewrites the event files rather than adding a second copy of every epoch."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["run", "mythical-digit", "--dataset", str(npz), "--omit", "three", "--out", str(tracked), *SMALL]
    assert main([*args, "--tracker", "tensorboard"]) == 0
    folder = tracked / "tensorboard" / "KD" / "seed0"
    assert len(list(folder.iterdir())) == 1
    acc = EventAccumulator(str(folder))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2]
    assert not [p for p in (tracked).iterdir() if p.name.startswith(".tensorboard")]  # no leftovers


def test_mlflow_logs_match_the_run(tracked, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tracked / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mythical-digit")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "out" and run.info.status == "FINISHED"
    result = json.loads((tracked / "results.json").read_text())
    assert run.data.params["temperature"] == "4.0" and run.data.params["omit"] == "three"
    assert run.data.params["dataset"] == result["config"]["dataset"]
    for (name, seed), history in histories(tracked).items():
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            logged = client.get_metric_history(run.info.run_id, f"{slug(name)}/seed{seed}/{key}")
            assert sorted((m.step, m.value) for m in logged) == [(h["epoch"], h[key]) for h in history]
    for key, value in expected_final(tracked).items():
        assert run.data.metrics[f"final/{key}"] == pytest.approx(value, rel=1e-12)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"table.md", "results.json", "figures"}
    table = client.download_artifacts(run.info.run_id, "table.md", str(tmp_path))
    assert Path(table).read_text() == (tracked / "table.md").read_text()
    assert (tracked / "mlartifacts").is_dir()  # artifacts stay in the run's folder


@pytest.mark.parametrize("tracker", ["tensorboard", "mlflow"])
def test_missing_tracker_package_is_a_one_line_error(tracker, npz, tmp_path, monkeypatch, capsys):
    import importlib

    real = importlib.import_module

    def fake(name, *args):
        if name == tracker:
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr("kdlab.tracking.importlib.import_module", fake)
    out = tmp_path / "out"
    code = main(["run", "mythical-digit", "--dataset", str(npz), "--out", str(out), "--tracker", tracker])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert f"--tracker {tracker} needs the {tracker} package: pip install 'kdlab[tracking]'" in err
    assert not out.exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tracker", "wandb"], "--tracker must be one of tensorboard, mlflow, not 'wandb'"),
        (["--tracking-uri", "sqlite:///x.db"], "--tracking-uri needs --tracker mlflow"),
        (["--tracker", "tensorboard", "--tracking-uri", "x"], "--tracking-uri needs --tracker mlflow"),
    ],
)
def test_invalid_tracker_settings(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "mythical-digit", "--out", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


@pytest.mark.slow
def test_sweep_logs_each_point_as_its_own_mlflow_run(npz, tmp_path, monkeypatch):
    """Each point is one run with its swept value; the npz path is relative to where kdlab runs."""
    pytest.importorskip("ray")
    monkeypatch.chdir(npz.parent)
    file = tmp_path / "tiny.toml"
    file.write_text(
        f'name = "tiny"\n[base]\ndataset = "{npz.name}"\nomit = ["three"]\nteacher_hidden = [50]\n'
        "student_hidden = [20]\n[grid]\ntemperature = [2, 8]\n"
    )
    out = tmp_path / "sweep"
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    args = ["sweep", str(file), "--out", str(out), "--num-cpus", "2", "--epochs", "1", "--quiet"]
    assert main([*args, "--tracker", "mlflow", "--tracking-uri", uri]) == 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("sweep-tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["swept.temperature"] for r in runs) == ["2", "8"]
    assert sorted(r.info.run_name for r in runs) == ["temperature=2", "temperature=8"]
    records = {
        json.loads(p.read_text())["params"]["temperature"]: json.loads(p.read_text())
        for p in (out / "records").glob("*.json")
    }
    for run in runs:
        rows = records[int(run.data.params["swept.temperature"])]["rows"]
        assert run.data.metrics["final/kd_omitted_after"] == pytest.approx(rows[0]["kd_omitted_after"])
    assert os.path.isabs(runs[0].data.params["dataset"])  # resolved for the workers


@pytest.mark.slow
def test_every_protocol_logs_the_curves_of_every_model(npz, tmp_path):
    """every-digit lists its models like mythical-digit: each one's curves reach TensorBoard."""
    pytest.importorskip("tensorboard", reason="pip install 'kdlab[tracking]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "every"
    args = ["run", "every-digit", "--dataset", str(npz), "--classes", "three", "--out", str(out), *SMALL]
    assert main([*args, "--val-size", "200", "--tracker", "tensorboard"]) == 0
    runs = histories(out)
    assert {name for name, _ in runs} == {"Teacher", "Norm Nothree", "KD Nothree"}
    assert len(runs) == 1 + 2 * 2
    for (name, seed), history in runs.items():
        acc = EventAccumulator(str(out / "tensorboard" / slug(name) / f"seed{seed}"))
        acc.Reload()
        assert [e.value for e in acc.Scalars("loss/val")] == pytest.approx([h["val_loss"] for h in history])


@pytest.fixture
def unused_port(monkeypatch) -> int:
    """A port on 127.0.0.1 where nothing listens (and no proxy in the way)."""
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_uri_is_refused_before_anything_trains(
    npz, unused_port, tmp_path, monkeypatch, capsys
):
    def tripwire(*_args, **_kwargs):
        raise AssertionError("a model trains before the tracking URI is checked")

    pytest.importorskip("mlflow", reason="pip install 'kdlab[tracking]'")
    monkeypatch.setattr("kdlab.protocols.common.Lab.train", tripwire)
    out, uri = tmp_path / "out", f"http://127.0.0.1:{unused_port}"
    start = time.perf_counter()
    args = ["run", "mythical-digit", "--dataset", str(npz), "--out", str(out), *SMALL]
    code = main([*args, "--tracker", "mlflow", "--tracking-uri", uri])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and time.perf_counter() - start < 30
    assert err.startswith(f"kdlab: error: --tracking-uri {uri}: nothing answers at 127.0.0.1:{unused_port}")
    assert not out.exists()  # nothing trained, nothing written
    sweep = tmp_path / "s.toml"
    sweep.write_text(f"[base]\ndataset = '{npz}'\n[grid]\ntemperature = [2]\n")
    code = main(["sweep", str(sweep), "--out", str(out), "--tracker", "mlflow", "--tracking-uri", uri])
    err = capsys.readouterr().err
    assert code == 1 and "nothing answers at" in err and err.count("\n") == 1 and not out.exists()


REFUSED = (
    ": nothing answers at 127.0.0.1:{port} (Connection refused); "
    "start the tracking server or choose another --tracking-uri"
)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://127.0.0.1:{port}", REFUSED),
        ("https://127.0.0.1:{port}/mlflow", REFUSED),
        ("postgresql+psycopg2://me@127.0.0.1:{port}/runs", REFUSED),
        ("http://127.0.0.1:port", " has an invalid port"),
        ("sqlite:///{file}/mlflow.db", ": {file} is not a folder kdlab may write in"),
        ("sqlite:///{tmp}", ": {tmp} is not a file kdlab may write"),
        ("file://{file}/mlruns", ": {file} is not a folder kdlab may write in"),
        ("{file}/deeper/mlruns", ": {file} is not a folder kdlab may write in"),
        ("sqlite:///{tmp}/new/deeper/mlflow.db", None),
        ("file://{tmp}/mlruns", None),
        ("{tmp}/mlruns", None),
        ("{server}", None),
        ("databricks", None),
    ],
)
def test_tracking_uris_that_cannot_work_are_one_line(uri, message, unused_port, server, tmp_path):
    """Checked in seconds, creating nothing: a server must answer, a local store be writable."""
    from kdlab import KdlabError
    from kdlab.tracking import check_uri

    file = tmp_path / "a-file"
    file.write_text("")
    values = {"port": unused_port, "file": file, "tmp": tmp_path, "server": server.url}
    uri = uri.format(**values)
    if message is None:
        check_uri(uri)
    else:
        with pytest.raises(KdlabError) as info:
            check_uri(uri)
        assert str(info.value) == f"--tracking-uri {uri}{message.format(**values)}"
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_tracker_failing_after_the_run_costs_none_of_its_results(tracked, npz, server, tmp_path, capsys):
    """A server that answers but fails every request (the conftest's: 404 for all)."""
    out = tmp_path / "out"
    args = ["run", "mythical-digit", "--dataset", str(npz), "--omit", "three", "--out", str(out),
            "--models-dir", str(tracked / "models"), *SMALL]  # fmt: skip
    start = time.perf_counter()
    code = main([*args, "--tracker", "mlflow", "--tracking-uri", server.url])
    captured = capsys.readouterr()
    assert code == 3 and captured.err.count("\n") == 1 and time.perf_counter() - start < 60
    saved = f"kdlab: error: the run's results are saved in {out}/"
    assert captured.err.startswith(f"{saved}, but --tracker mlflow failed: MLflow ({server.url})")
    assert server.requested and f"wrote {out}/" in captured.out
    results = json.loads((out / "results.json").read_text())
    assert results["table"] == json.loads((tracked / "results.json").read_text())["table"]
    assert all(m[0]["reused"] for m in results["models"].values())


def test_any_tracker_failure_is_one_line_after_the_results(tracked, npz, tmp_path, monkeypatch, capsys):
    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kdlab.tracking.write_tensorboard", full)
    out = tmp_path / "out"
    args = ["run", "mythical-digit", "--dataset", str(npz), "--omit", "three", "--out", str(out),
            "--models-dir", str(tracked / "models"), *SMALL, "--tracker", "tensorboard"]  # fmt: skip
    assert main(args) == 3
    err = capsys.readouterr().err
    assert err == (
        f"kdlab: error: the run's results are saved in {out}/, but --tracker tensorboard failed: "
        "OSError: [Errno 28] No space left on device\n"
    )
    assert (out / "results.json").is_file() and (out / "table.md").is_file()
