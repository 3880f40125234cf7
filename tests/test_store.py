"""The model store: a reused model is exactly the model the settings ask for.

Changing anything its weights depend on changes its key; a damaged stored model is detected
and trained again; and a change to the engine that changes trained weights is caught by a
reference fingerprint of a tiny deterministic run (then bump ENGINE_VERSION)."""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import pytest
import torch
from helpers import classes_data, train_spec

from kdlab.config import RunOptions
from kdlab.protocols.common import Lab, ModelJob, data_identity, taught_by
from kdlab.training.engine import Monitor, SoftTargets, TrainingData, TrainSpec, train_group
from kdlab.training.store import WEIGHTS, ModelStore

SPEC = train_spec(sizes=(12, 16, 4), epochs=2, temperature=1.0, t2=False)


def _dataset(mean=(0.1307,), std=(0.3081,)) -> SimpleNamespace:
    return SimpleNamespace(hashes={"train": "ab", "test": "cd"}, spec=SimpleNamespace(mean=mean, std=std))


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return "cnn" if value == "mlp" else value + "x"
    return (*value, 1)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainSpec)])
def test_every_training_setting_changes_the_key(name):
    identity = data_identity(_dataset(), torch.device("cpu"))
    other = dataclasses.replace(SPEC, **{name: _changed(getattr(SPEC, name))})
    assert ModelJob("m", other, identity, 0).key != ModelJob("m", SPEC, identity, 0).key


@pytest.mark.parametrize(
    "other",
    [
        data_identity(_dataset(mean=(0.2,)), torch.device("cpu")),
        data_identity(_dataset(std=(0.5,)), torch.device("cpu")),
        data_identity(_dataset(), torch.device("cuda")),
        {**data_identity(_dataset(), torch.device("cpu")), "data_sha256": {"train": "ab", "test": "ce"}},
    ],
    ids=["mean", "std", "device", "data"],
)
def test_normalisation_device_and_data_change_the_key(other):
    base = data_identity(_dataset(), torch.device("cpu"))
    assert ModelJob("m", SPEC, other, 0).key != ModelJob("m", SPEC, base, 0).key


def test_a_student_names_its_teacher_by_its_weights():
    identity = data_identity(_dataset(), torch.device("cpu"))

    def teacher(digest: str) -> SimpleNamespace:
        return SimpleNamespace(record={"weights_sha256": digest, "key": "same recipe"})

    one, two = taught_by(identity, teacher("1" * 64)), taught_by(identity, teacher("2" * 64))
    assert ModelJob("KD", SPEC, one, 0).key != ModelJob("KD", SPEC, two, 0).key


def _train(store: ModelStore) -> list:
    x, y = classes_data()
    job = ModelJob("Norm", SPEC, data_identity(_dataset(), torch.device("cpu")), 0)
    data = SimpleNamespace(**vars(_dataset()), classes=tuple("abcd"), image_shape=None)
    lab = Lab(RunOptions(quiet=True), torch.device("cpu"), data, store, x, y, x, y, provenance={})
    return lab.train([job], torch.arange(len(x))).models


def test_a_damaged_model_is_detected_and_trained_again(tmp_path):
    store = ModelStore(tmp_path / "models")
    first = _train(store)[0]
    assert not first.reused and first.record["weights_sha256"]
    assert _train(store)[0].reused
    weights = first.folder / WEIGHTS
    damaged = bytearray(weights.read_bytes())
    damaged[-1] ^= 0xFF  # one flipped bit of the last weight
    weights.write_bytes(bytes(damaged))
    with pytest.warns(UserWarning, match="damaged"):
        again = _train(store)[0]
    assert not again.reused
    assert again.record["weights_sha256"] == first.record["weights_sha256"]  # retrained: same weights
    assert (
        json.loads((first.folder / "record.json").read_text())["weights_sha256"]
        == first.record["weights_sha256"]
    )


# Rounded statistics of the weights of a tiny deterministic run (2 epochs, dropout, Adam, KD);
# rounding across x86 CPUs moves them by far less than the tolerance, a changed random stream
# or update rule by far more.
REFERENCE = {
    "0.w0.sum": 0.625750726,
    "0.w0.abs": 27.0887681,
    "0.b0.sum": 0.093564067,
    "0.b0.abs": 2.53228227,
    "0.w1.sum": 0.343666662,
    "0.w1.abs": 8.71369046,
    "0.b1.sum": 0.086517232,
    "0.b1.abs": 0.27170862,
    "1.w0.sum": -2.05225767,
    "1.w0.abs": 26.1432076,
    "1.b0.sum": 0.0610067935,
    "1.b0.abs": 1.90092682,
    "1.w1.sum": 1.41646192,
    "1.w1.abs": 6.554926,
    "1.b1.sum": -0.51310388,
    "1.b1.abs": 0.591144897,
}
TOLERANCE = 2e-5  # relative (and absolute near 0): Adam eps 1e-8 -> 1e-6 moves them 15 times more


def fingerprint() -> dict[str, float]:
    x, y = classes_data()
    teacher_logits = torch.randn(len(x), 4, generator=torch.Generator().manual_seed(5))
    specs = [SPEC, dataclasses.replace(SPEC, alpha=0.9, temperature=4.0, t2=True, init_seed=3, stream_seed=4)]
    model, _ = train_group(
        specs, TrainingData(x, y, 4), torch.arange(len(x)), Monitor(x, y), SoftTargets(teacher_logits)
    )
    stats = {}
    for k in range(len(specs)):
        for name, value in model.state_of(k).items():
            stats[f"{k}.{name}.sum"] = float(value.double().sum())
            stats[f"{k}.{name}.abs"] = float(value.double().abs().sum())
    return stats


def test_the_engine_still_trains_the_reference_weights():
    measured = fingerprint()
    off = {
        name: (value, measured[name])
        for name, value in REFERENCE.items()
        if not math.isclose(measured[name], value, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    }
    assert not off, (
        f"trained weights changed (reference, now): {off}. If the change is intended, bump "
        "ENGINE_VERSION in kdlab/protocols/common.py (stored models are then trained again) and "
        "update REFERENCE in this file with the values fingerprint() gives."
    )


def test_the_cpu_kernels_are_part_of_the_device_kind(monkeypatch):
    """Models trained with the kernels of another instruction set round differently: their key
    and the output folder's claim name the kernels, not just `cpu`."""
    from kdlab.protocols import common

    kinds = {}
    for capability in ("AVX2", "AVX512"):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        kinds[capability] = data_identity(_dataset(), torch.device("cpu"))
        assert common.device_kind(torch.device("cpu")) == f"cpu-{capability.lower()}"
    assert ModelJob("m", SPEC, kinds["AVX2"], 0).key != ModelJob("m", SPEC, kinds["AVX512"], 0).key
