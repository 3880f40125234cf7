"""Sweeps on a real Ray: in-process on this machine, on a separate head reached with
--address, with a worker killed mid-sweep; and the sweep files' validation without Ray."""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import TINY_STUDY

from kdlab.cli import main
from kdlab.sweep.spec import load_spec, parse_spec

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
BIN = Path(sys.executable).parent
TINY = (
    """
name = "tiny"
metrics = ["kd_omitted_after", "kd_omitted_before"]
"""
    + TINY_STUDY
    + """[grid]
temperature = [2, 8]
alpha = [0.5, 0.9]
"""
)
BUDGET = ["--epochs", "1", "--subset", "2000", "--quiet"]


def _ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not _ray_available(), reason="Ray is not installed (pip install 'kdlab[ray]')")


def _write(tmp_path: Path, text: str, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.toml")), ids=lambda p: p.name)
def test_example_files_are_valid(path):
    if "[space]" in path.read_text():
        from kdlab.sweep.options import TuneBudget
        from kdlab.sweep.tune import load_tune_spec

        assert load_tune_spec(path, {}, TuneBudget()).settings.num_samples >= 1
    else:
        spec = load_spec(path)
        assert len(spec.swept) == 2 and len(spec.points()) == math.prod(map(len, spec.grid.values()))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\ntemprature = [1, 2]", "unknown parameter 'temprature'"),
        ("[grid]\ntemperature = [1, -2]", "temperature must be in (0, 10000], not -2"),
        ("[grid]\ntemperature = []", "non-empty list"),
        ("metrics = ['accuracy']\n[grid]\nalpha = [0.5]", "unknown metric 'accuracy'"),
        ("protocol = 'every-digit'\n[grid]\nalpha = [0.5]", "sweeps support the protocol"),
        ("grids = 1", "unknown sweep key(s) grids"),
    ],
)
def test_invalid_sweep_files_fail_in_one_line(text, message, tmp_path, capsys):
    code = main(["sweep", str(_write(tmp_path, text)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.startswith("kdlab: error:") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_budget_overrides_apply_to_every_point_but_not_to_a_swept_parameter(tmp_path):
    spec = parse_spec({"base": {"epochs": 10}, "grid": {"alpha": [0.5, 0.9], "epochs": [1, 2]}}, "x")
    assert len(spec.points()) == 4
    smoke = parse_spec({"base": {"seeds": 5}, "grid": {"alpha": [0.5, 0.9]}}, "x").with_overrides(
        {"seeds": 1}
    )
    assert {p.config.seeds for p in smoke.points()} == {1}
    with pytest.raises(Exception, match="cannot override swept parameter"):
        spec.with_overrides({"epochs": 1})


def test_without_ray_the_sweep_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    code = main(["sweep", str(_write(tmp_path, TINY)), "--out", str(tmp_path / "out"), *BUDGET])
    assert code == 1 and "pip install 'kdlab[ray]'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_sweep(shared_data, tmp_path_factory):
    """The tiny 2×2 sweep, 2 seeds, on a Ray instance started in-process (2 CPUs)."""
    tmp = tmp_path_factory.mktemp("sweep")
    file = _write(tmp, TINY)
    out = tmp / "out"
    args = ["sweep", str(file), "--out", str(out), "--data-dir", str(shared_data), "--num-cpus", "2"]
    assert main([*args, *BUDGET, "--seeds", "2"]) == 0
    return args, out


@needs_ray
@pytest.mark.slow
def test_local_sweep_writes_one_row_per_point_and_seed(local_sweep):
    _, out = local_sweep
    rows = _rows(out)
    assert len(rows) == 8 and Counter((r["temperature"], r["alpha"]) for r in rows) == {
        (t, a): 2
        for t in ("2.0", "8.0")
        for a in ("0.5", "0.9")  # the settings as checked: floats
    }
    assert {r["seed"] for r in rows} == {"0", "1"}
    # every row is its point's own result, read from the point's results.json
    for row in rows:
        result = json.loads((out / "points" / row["point"] / "results.json").read_text())
        i = result["seeds"].index(int(row["seed"]))
        assert float(row["temperature"]) == result["config"]["temperature"]
        assert float(row["alpha"]) == result["config"]["alpha"]
        after = result["calibration"]["KD No3"]["validation"]["omitted"][i]
        before = result["overall"]["KD No3"]["per_seed_omitted_accuracy"][i]
        assert float(row["kd_omitted_after"]) == pytest.approx(after, abs=1e-9)
        assert float(row["kd_omitted_before"]) == pytest.approx(before, abs=1e-9)
        assert float(row["kd_accuracy"]) == pytest.approx(result["overall"]["KD"]["per_seed_accuracy"][i])
    # the teacher was trained once, before the points, and every point reused it
    assert all(r["teacher_reused"] == "True" for r in rows)
    assert len(list((out / "models").glob("teacher-*"))) == 1
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert records[0]["config.student_hidden"] == [50] and len(records) == 8
    summary = (out / "summary.md").read_text()
    assert summary.startswith("| temperature | alpha | seeds | kd_omitted_after |") and " ± " in summary
    for name in ("kd_omitted_after.png", "kd_omitted_after_lines.png", "kd_omitted_before.png"):
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_ray
@pytest.mark.slow
def test_rerun_skips_finished_points(local_sweep, capsys):
    args, out = local_sweep
    before = {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    assert main([*args, *BUDGET, "--seeds", "2"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()} == before
    assert len(_rows(out)) == 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A separate Ray head on 127.0.0.1 with token authentication, stopped afterwards by
    signalling the `ray start --block` process we started (it stops its own processes; a
    machine-wide `ray stop` would also stop other people's Ray)."""
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    log = (tmp_path_factory.mktemp("head") / "head.log").open("w")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--port", str(port), "--node-ip-address",
         "127.0.0.1", "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 90
        while True:  # the head is up once its GCS port accepts connections
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None and time.time() < deadline, "ray start --head failed"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()


def _sweep_on(address: str, env: dict, file: Path, out: Path, data: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "kdlab"), "sweep", str(file), "--address", address, "--out", str(out),
         "--data-dir", str(data), *BUDGET, *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@needs_ray
@pytest.mark.slow
def test_sweep_on_a_separate_head_with_a_worker_killed(ray_head, shared_data, tmp_path):
    """Against the head at --address: a point's worker is killed (SIGKILL) while it trains;
    Ray runs the point again and the sweep completes with every point exactly once."""
    address, env = ray_head
    file = _write(tmp_path, TINY.replace("alpha = [0.5, 0.9]", "alpha = [0.9]"))
    out = tmp_path / "out"
    sweep = _sweep_on(address, env, file, out, shared_data, "--max-retries", "2")
    killed = None
    deadline = time.time() + 240
    while killed is None and sweep.poll() is None and time.time() < deadline:
        for worker in (out / "workers").glob("*.json") if (out / "workers").is_dir() else []:
            info = json.loads(worker.read_text())
            os.kill(info["pid"], signal.SIGKILL)
            killed = (worker.stem, info["pid"])
            break
        time.sleep(0.02)
    output = sweep.communicate(timeout=300)[0]
    assert sweep.returncode == 0, output
    assert killed is not None, "no worker seen to kill"
    rows = _rows(out)
    points = load_spec(file).with_overrides({"epochs": 1, "subset": 2000}).points()
    assert Counter(r["point"] for r in rows) == {p.id: 1 for p in points} and len(points) == 2
    record = json.loads((out / "records" / f"{killed[0]}.json").read_text())
    assert record["worker"]["pid"] != killed[1]  # finished by another worker after the kill


def test_trials_asking_for_more_than_the_cluster_has_fail_at_once():
    from kdlab.sweep.options import RayOptions
    from kdlab.sweep.runner import check_resources

    check_resources({"CPU": 2.0}, RayOptions(cpus_per_trial=2))
    with pytest.raises(Exception, match=r"--gpus-per-trial 0\.5, but the Ray cluster has 0 GPU"):
        check_resources({"CPU": 2.0}, RayOptions(gpus_per_trial=0.5))
    with pytest.raises(Exception, match="--cpus-per-trial 4"):
        check_resources({"CPU": 2.0}, RayOptions(cpus_per_trial=4))


def _record(params: dict, values: list[float]) -> dict:
    rows = [{"seed": s, "kd_accuracy": v} for s, v in enumerate(values)]
    return {"point": "p", "config": {"temperature": 4.0, "student_hidden": [300], **params}, "rows": rows}


def test_figures_heat_map_for_two_parameters_and_ci_line_for_one(tmp_path):
    from kdlab.sweep.plots import sweep_figures

    grid = [
        _record({"temperature": t, "student_hidden": [w]}, [90 + t, 91 + t])
        for t in (1, 8)
        for w in (30, 300)
    ]
    two = sweep_figures(grid, ["temperature", "student_hidden"], ("kd_accuracy",), tmp_path / "two")
    assert [p.name for p in two] == ["kd_accuracy.png", "kd_accuracy_lines.png"]
    one = sweep_figures(grid[:2], ["student_hidden"], ("kd_accuracy",), tmp_path / "one")
    assert [p.name for p in one] == ["kd_accuracy.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in two + one)


def test_yaml_sweep_files(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "s.yaml"
    path.write_text("name: y\ngrid:\n  temperature: [2, 4]\n  student_hidden: [[30, 30], [300, 300]]\n")
    spec = load_spec(path)
    assert spec.name == "y" and [p.config.student_hidden for p in spec.points()][:2] == [(30, 30), (300, 300)]


def test_resources_per_trial_are_declared_in_the_file():
    spec = parse_spec({"grid": {"alpha": [0.5]}, "resources": {"cpus": 2, "gpus": 0.25}}, "x")
    assert spec.resources == {"cpus_per_trial": 2.0, "gpus_per_trial": 0.25}
    with pytest.raises(Exception, match="resources"):
        parse_spec({"grid": {"alpha": [0.5]}, "resources": {"memory": 2}}, "x")


@needs_ray
@pytest.mark.slow
def test_the_python_api_returns_the_sweep_as_a_dataframe(local_sweep, shared_data):
    """`kdlab.sweep` over finished points: the same rows as results.csv, nothing rerun."""
    import kdlab

    args, out = local_sweep
    frame = kdlab.sweep(args[1], out=out, data_dir=shared_data, epochs=1, subset=2000, seeds=2)
    rows = _rows(out)
    assert len(frame) == len(rows) == 8
    assert list(frame["point"]) == [r["point"] for r in rows]
    assert [f"{v:.6g}" for v in frame["kd_omitted_after"]] == [
        f"{float(r['kd_omitted_after']):.6g}" for r in rows
    ]


def _point(params: dict, values: dict[str, list[float]]) -> dict:
    seeds = range(len(next(iter(values.values()))))
    return {"config": params, "rows": [{"seed": s, **{m: v[s] for m, v in values.items()}} for s in seeds]}


def test_summary_findings_name_the_best_point_and_those_a_paired_test_cannot_tell_from_it():
    from kdlab.settings.metric import Metric
    from kdlab.sweep.table import summary_findings, summary_markdown

    acc_m, errors_m = Metric("acc", "%", True, ""), Metric("kd_errors", "errors", False, "")
    shift_m = Metric("kd_shift", "logit", None, "")  # no direction: no best point

    def point(t, acc, errors, shift):
        return _point({"temperature": t}, {"acc": acc, "kd_errors": errors, "kd_shift": shift})

    records = [
        point(1, [50.0, 52.0, 51.0], [9, 8, 7], [1, 2, 3]),
        point(4, [60.0, 61.0, 63.0], [5, 6, 5], [1, 1, 1]),
        point(8, [61.0, 60.0, 62.5], [6, 5, 6], [0, 0, 0]),
    ]
    acc, errors = summary_findings(records, ["temperature"], (acc_m, errors_m, shift_m))
    assert acc.startswith("acc: best at temperature = 4, 61.33 ± ")
    assert "1 of the other 2 points are not distinguishable" in acc  # T = 8 ties, T = 1 loses
    assert acc.endswith("range from 51.00 to 61.33")
    assert errors.startswith("kd_errors: best at temperature = 4, 5.33 ± ")  # fewer is better
    summary = summary_markdown(records, ["temperature"], (acc_m,))
    assert summary.splitlines()[-1].startswith("- acc: best at temperature = 4")
    # one seed: the best point and the range, no test
    one = [_point({"temperature": t}, {"acc": [a]}) for t, a in ((1, 50.0), (2, 55.0))]
    assert summary_findings(one, ["temperature"], (acc_m,)) == [
        "acc: best at temperature = 2, 55.00; the points' means range from 50.00 to 55.00"
    ]


ENSEMBLE = """
name = "tiny-ensemble"
protocol = "ensemble"
metrics = ["recovered", "distilled_accuracy"]

[base]
budget = "quick"
members = 2
hidden = [30]
member_epochs = 1
student_epochs = 1
alphas = [1.0]
val_size = 300
student_jitter = "none"

[grid]
temperatures = [[2], [4]]
"""


@needs_ray
@pytest.mark.slow
def test_a_sweep_of_the_ensemble_protocol_trains_its_members_in_each_point(shared_data, tmp_path):
    file = _write(tmp_path, ENSEMBLE)
    out = tmp_path / "out"
    args = ["sweep", str(file), "--out", str(out), "--data-dir", str(shared_data), "--num-cpus", "2"]
    assert main([*args, "--subset", "1200", "--seeds", "2", "--quiet"]) == 0
    rows = _rows(out)
    assert len(rows) == 4 and {r["seed"] for r in rows} == {"0", "1"}
    for row in rows:
        result = json.loads((out / "points" / row["point"] / "results.json").read_text())
        i = result["seeds"].index(int(row["seed"]))
        assert float(row["distilled_accuracy"]) == pytest.approx(
            result["students"]["distilled"]["accuracy"][i]
        )
    # the members are shared by both points: one set in the store
    assert len(list((out / "models").glob("member-0-*"))) == 1
