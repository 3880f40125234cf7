"""The protocol contract: a protocol is one small declaration (settings, metrics, measure,
analyse, render) plus a registry line, and the core runs it; an analysis that misses or
invents a declared metric is refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
import torch

from kdlab import KdlabError, protocols
from kdlab.cli import main
from kdlab.config import check_fields, option
from kdlab.data.base import Dataset
from kdlab.protocols.common import Lab, ModelJob, data_identity, derive_seed
from kdlab.protocols.contract import Analysis, Measured, Metric, Protocol
from kdlab.result import Rendering
from kdlab.training.engine import TrainSpec


# --- the smallest protocol: a hard-label MLP per seed, its test accuracy --------------------
@dataclass(frozen=True)
class TinySettings:
    """Settings of the tiny protocol."""

    dataset: str = option("mnist", "data set")
    epochs: int = option(1, "training epochs", ge=1)
    seeds: int = option(2, "students, seeds 0..N-1", ge=1)
    subset: int = option(600, "training images", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)

    def resolve(self, data: Dataset) -> TinySettings:
        if self.subset > len(data.y_train):
            raise KdlabError(f"--subset {self.subset} is larger than the training set")
        return self


@dataclass
class TinyMeasured(Measured):
    accuracy: list[float]  # per seed, %


def measure(lab: Lab, s: TinySettings) -> TinyMeasured:
    jobs = [
        ModelJob(
            "Student",
            TrainSpec(
                sizes=(lab.data.num_features, 20, lab.num_classes),
                dropout=0.0,
                epochs=s.epochs,
                batch_size=100,
                lr=1e-3,
                alpha=0.0,
                temperature=1.0,
                t2=False,
                init_seed=derive_seed(seed, "init"),
                stream_seed=derive_seed(seed, "stream"),
            ),
            {**data_identity(lab.data, lab.device), "subset": s.subset},
            seed,
        )
        for seed in range(s.seeds)
    ]
    students = lab.train(jobs, torch.arange(s.subset, device=lab.device)).models
    accuracy = [100 * s.accuracy for s in lab.evaluate(students)]
    return TinyMeasured(s, {"Student": students}, accuracy)


def analyse(m: TinyMeasured) -> dict:
    return {
        "seeds": list(range(m.settings.seeds)),
        "findings": [f"mean accuracy {sum(m.accuracy) / len(m.accuracy):.2f}%"],
        "metrics": {"accuracy": m.accuracy},
    }


def render(a: Analysis) -> Rendering:
    text = "\n".join(f"- {line}" for line in a.data["findings"])
    return Rendering({"report.md": text}, {}, [text], lambda: (None, None))


TINY = Protocol(
    "tiny",
    "one hard-label student per seed",
    TinySettings,
    measure,
    analyse,
    render,
    (Metric("accuracy", "%", True, "test accuracy"),),
)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def registered(monkeypatch):
    """The registry with the tiny protocol's one line added."""
    real = protocols._protocols
    monkeypatch.setattr(protocols, "_protocols", lambda: {**real(), TINY.name: TINY})


@pytest.mark.slow
def test_a_protocol_declared_on_the_contract_runs_end_to_end(registered, shared_data, tmp_path):
    out = tmp_path / "out"
    args = ["run", "tiny", "--data-dir", str(shared_data), "--out", str(out), "--quiet"]
    assert main([*args, "--seeds", "2", "--subset", "600"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["protocol"] == "tiny" and data["config"]["subset"] == 600
    assert len(data["metrics"]["accuracy"]) == 2 and all(a > 30 for a in data["metrics"]["accuracy"])
    assert [m["seed"] for m in data["models"]["Student"]] == [0, 1]  # the core's model index
    assert data["wall_time_s"] > 0 and data["data_sha256"] and data["versions"]  # and provenance
    assert (out / "report.md").read_text().startswith("- mean accuracy")
    assert protocols.sweepable("tiny") is TINY  # it declares metrics: sweeps take it
    # the same settings rerun into the folder reuse the models; other settings are refused
    assert main([*args, "--seeds", "2", "--subset", "600"]) == 0
    assert json.loads((out / "results.json").read_text())["models"]["Student"][0]["reused"]
    assert main([*args, "--subset", "700"]) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "metrics, message",
    [
        ({}, "misses the metric(s) accuracy"),
        ({"accuracy": [1.0, 2.0], "loss": [1.0, 2.0]}, "fills undeclared metric(s) loss"),
        ({"accuracy": [1.0]}, "metric(s) accuracy need one value per seed"),
    ],
)
def test_the_core_refuses_an_analysis_that_misses_or_adds_a_metric(metrics, message, shared_data, tmp_path):
    from kdlab.config import RunOptions

    wrong = replace(TINY, analyse=lambda m: {**analyse(m), "metrics": metrics})
    opts = RunOptions(data_dir=shared_data, models_dir=tmp_path / "models", quiet=True)
    with pytest.raises(KdlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        wrong.run(TinySettings(seeds=2, subset=600), opts)


def test_a_protocol_without_metrics_may_not_fill_any():
    from kdlab.protocols.contract import check_metrics

    bare = replace(TINY, metrics=())
    check_metrics(bare, {"seeds": [0]})
    with pytest.raises(KdlabError, match="fills undeclared metric"):
        check_metrics(bare, {"seeds": [0], "metrics": {"accuracy": [1.0]}})


def test_every_registered_protocol_keeps_the_contract():
    """Each one is declared once, in its module, with typed metrics of distinct names; a line
    naming its torch-free declaration gives the command line what that PROTOCOL declares."""
    for name in protocols.names():
        entry = protocols.get(name)
        p = entry.protocol if isinstance(entry, protocols.Lazy) else entry
        assert isinstance(p, Protocol) and p.name == name
        assert (entry.help, entry.settings, entry.metrics) == (p.help, p.settings, p.metrics)
        assert all(isinstance(m, Metric) for m in p.metrics)
        assert len(set(p.metric_names)) == len(p.metrics) and entry.metric_names == p.metric_names
        assert callable(p.settings.resolve)
