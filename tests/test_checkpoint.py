"""An interrupted group resumes from its last save and ends with the very weights and curves of
an uninterrupted run; a save that is damaged, of other models or of other shapes is ignored
with a warning, and the group trains from epoch 0."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import classes_data, train_spec

from kdlab.config import RunOptions
from kdlab.protocols.common import BestEpoch, Lab, ModelJob, data_identity
from kdlab.training.checkpoint import Checkpoint
from kdlab.training.engine import Monitor, SoftTargets, TrainingData, steps_per_epoch, train_group
from kdlab.training.store import PARTIAL, ModelStore

EPOCHS = 5
SIZES = (16, 16, 16, 4)  # 4 x 4 images, so that they can be jittered
GROUPS = {
    "adam-kd": [
        train_spec(sizes=SIZES, epochs=EPOCHS, input_dropout=0.2),
        train_spec(
            sizes=SIZES, epochs=EPOCHS, input_dropout=0.2, alpha=0.9, lr=3e-3, init_seed=3, stream_seed=4
        ),
    ],
    "nesterov-jitter-max-norm": [
        train_spec(
            sizes=SIZES, epochs=EPOCHS, optimizer="nesterov", momentum=0.9, lr=0.05, jitter=1, max_norm=1.5
        ),
        train_spec(
            sizes=SIZES,
            epochs=EPOCHS,
            optimizer="nesterov",
            momentum=0.9,
            lr=0.02,
            jitter=1,
            max_norm=1.5,
            init_seed=7,
        ),
    ],
}
KEYS = ["one", "two"]
PER_EPOCH = steps_per_epoch(240, 32)


class Stop(Exception):
    pass


def _data() -> tuple[TrainingData, Monitor, SoftTargets, torch.Tensor]:
    x, y = classes_data(d=16)
    logits = torch.randn(len(x), 4, generator=torch.Generator().manual_seed(5))
    return (
        TrainingData(x, y, 4, image_shape=(1, 4, 4)),
        Monitor(x, y),
        SoftTargets(logits),
        torch.arange(len(x)),
    )


def _train(specs, checkpoint=None, stop_at_step=None, best=None):
    data, monitor, soft, transfer = _data()
    steps = 0

    def on_step():
        nonlocal steps
        steps += 1
        if steps == stop_at_step:
            raise Stop

    model, histories = train_group(specs, data, transfer, monitor, soft, on_step, best, checkpoint)
    return model, histories, steps


def _strip(histories):
    return [[{k: v for k, v in h.items() if k != "seconds"} for h in hist] for hist in histories]


@pytest.mark.parametrize("group", GROUPS)
def test_a_resumed_group_ends_as_an_uninterrupted_one(group, tmp_path):
    specs = GROUPS[group]
    whole, whole_hist, _ = _train(specs)
    per_epoch = PER_EPOCH
    path = tmp_path / "group.safetensors"
    with pytest.raises(Stop):  # killed half-way through the fourth epoch: epoch 3 was saved
        _train(specs, Checkpoint(path, KEYS, every_s=0), stop_at_step=3 * per_epoch + per_epoch // 2)
    again = Checkpoint(path, KEYS, every_s=0)
    model, histories, steps = _train(specs, again)
    assert again.resumed_epoch == 3
    assert steps == EPOCHS * per_epoch  # the progress bar counts the steps done before
    assert _strip(histories) == _strip(whole_hist)
    for k in range(len(specs)):
        for name, value in whole.state_of(k).items():
            assert torch.equal(model.state_of(k)[name], value), (k, name)


def test_the_best_epoch_is_kept_across_a_resume(tmp_path):
    specs = GROUPS["adam-kd"]
    whole = BestEpoch(len(specs))
    _train(specs, best=whole)
    path = tmp_path / "group.safetensors"
    first = BestEpoch(len(specs))
    with pytest.raises(Stop):
        _train(
            specs, Checkpoint(path, KEYS, every_s=0, extra=first), stop_at_step=4 * PER_EPOCH + 1, best=first
        )
    resumed = BestEpoch(len(specs))
    _train(specs, Checkpoint(path, KEYS, every_s=0, extra=resumed), best=resumed)
    assert resumed.epoch == whole.epoch and resumed.loss == whole.loss
    for mine, theirs in zip(resumed.state, whole.state):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[n], theirs[n]) for n in mine)


def _saved_after_two_epochs(path: Path, specs=None) -> None:
    with pytest.raises(Stop):
        _train(specs or GROUPS["adam-kd"], Checkpoint(path, KEYS, every_s=0), stop_at_step=2 * PER_EPOCH + 1)


def _flip_middle_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def _save_other_shapes(path: Path) -> None:
    path.unlink()
    _saved_after_two_epochs(path, [dataclasses.replace(s, sizes=(16, 8, 8, 4)) for s in GROUPS["adam-kd"]])


@pytest.mark.parametrize(
    ("spoil", "group", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), KEYS, "damaged"),
        (lambda p: p.write_bytes(b"\xff" * 8 + b"{}"), KEYS, "damaged"),
        (_flip_middle_byte, KEYS, "damaged"),
        (lambda p: None, ["one", "three"], "other models"),
        (_save_other_shapes, KEYS, "does not fit"),
    ],
    ids=["truncated", "no-header", "bit-flip", "other-group", "other-shapes"],
)  # fmt: skip
def test_a_save_that_does_not_fit_is_ignored(spoil, group, message, tmp_path):
    specs = GROUPS["adam-kd"]
    whole, _, _ = _train(specs)
    path = tmp_path / "group.safetensors"
    _saved_after_two_epochs(path)
    spoil(path)
    checkpoint = Checkpoint(path, group, every_s=0)
    with pytest.warns(UserWarning, match=message):
        model, histories, _ = _train(specs, checkpoint)
    assert checkpoint.resumed_epoch == 0 and len(histories[0]) == EPOCHS
    assert all(torch.equal(model.state_of(0)[n], v) for n, v in whole.state_of(0).items())


# The store's path: a killed run's rerun goes on from the last save, the model it saves is the
# uninterrupted one, and the partial state is gone afterwards; --fresh starts from epoch 0.


def _lab(store: ModelStore, fresh: bool = False) -> tuple[Lab, ModelJob]:
    x, y = classes_data()
    dataset = SimpleNamespace(
        hashes={"train": "ab", "test": "cd"}, spec=SimpleNamespace(mean=(0.1,), std=(0.3,))
    )
    job = ModelJob(
        "Norm", train_spec(sizes=(12, 16, 4), epochs=4), data_identity(dataset, torch.device("cpu")), 0
    )
    data = SimpleNamespace(**vars(dataset), classes=tuple("abcd"), image_shape=None)
    opts = RunOptions(quiet=True, fresh=fresh)
    return Lab(opts, torch.device("cpu"), data, store, x, y, x, y, provenance={}), job


@pytest.fixture
def killed_after_two_saves(tmp_path, monitor_saves):
    store = ModelStore(tmp_path / "models")
    lab, job = _lab(store)
    monitor_saves["kill_after"] = 2
    with pytest.raises(KeyboardInterrupt):
        lab.train([job], torch.arange(240))
    monitor_saves["kill_after"] = None
    assert store.load(job.name, job.key) is None
    assert len(list((store.root / PARTIAL).iterdir())) == 1
    return store


@pytest.fixture
def monitor_saves(monkeypatch):
    """Every epoch is saved; with `kill_after` set, the run is killed right after that many saves."""
    control = {"kill_after": None, "saves": 0}
    real = Checkpoint.save

    def save(self, tensors, meta):
        real(self, tensors, meta)
        control["saves"] += 1
        if control["saves"] == control["kill_after"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "due", lambda self: True)
    monkeypatch.setattr(Checkpoint, "save", save)
    return control


def test_a_killed_run_resumes_from_its_last_save(killed_after_two_saves, tmp_path):
    lab, job = _lab(killed_after_two_saves)
    resumed = lab.train([job], torch.arange(240)).models[0]
    lab, job = _lab(ModelStore(tmp_path / "elsewhere"))
    whole = lab.train([job], torch.arange(240)).models[0]
    assert resumed.record["resumed_from_epoch"] == 2 and "resumed_from_epoch" not in whole.record
    assert resumed.record["weights_sha256"] == whole.record["weights_sha256"]
    assert [h["val_loss"] for h in resumed.record["history"]] == [
        h["val_loss"] for h in whole.record["history"]
    ]
    assert resumed.record["group_wall_time_s"] > 0
    assert not list((killed_after_two_saves.root / PARTIAL).iterdir())


def test_fresh_starts_from_epoch_0(killed_after_two_saves):
    lab, job = _lab(killed_after_two_saves, fresh=True)
    model = lab.train([job], torch.arange(240)).models[0]
    assert "resumed_from_epoch" not in model.record and len(model.record["history"]) == 4


def _stored(store: ModelStore, key: str) -> None:
    store.save(f"model {key}", key, {"w": torch.zeros(2)}, {"key": key})


def _aged(path: Path, seconds: float) -> None:
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


def test_a_save_is_pruned_once_every_model_of_its_group_is_stored(tmp_path):
    store = ModelStore(tmp_path)
    path = store.partial(["a", "b"])
    Checkpoint(path, ["a", "b"]).save({"w": torch.ones(3)}, {"epoch": 1, "step": 4})
    _stored(store, "a")
    assert store.prune_partials() == [] and path.exists()  # b can still resume from it
    _stored(store, "b")
    assert store.prune_partials() == [path] and not path.exists()


def test_unreadable_saves_and_broken_writes_are_pruned_only_when_idle(tmp_path):
    store = ModelStore(tmp_path)
    kept = store.partial(["c"])
    Checkpoint(kept, ["c"]).save({"w": torch.ones(3)}, {"epoch": 1, "step": 4})
    junk = tmp_path / PARTIAL / "0123456789abcdef.safetensors"
    junk.write_bytes(b"\x05\x00")
    broken = tmp_path / PARTIAL / f".{kept.name}.x1y2.tmp"
    broken.write_bytes(b"half a save")
    assert store.prune_partials() == []  # another process may be writing them
    for path in (kept, junk, broken):
        _aged(path, 2 * 3600)
    assert sorted(store.prune_partials()) == sorted([junk, broken])
    assert kept.exists()  # readable, its model not stored: a rerun resumes from it


def test_a_group_trained_again_in_other_groups_leaves_no_save_behind(tmp_path, monitor_saves):
    store = ModelStore(tmp_path)
    lab, job = _lab(store)
    other = dataclasses.replace(job, name="Other", spec=dataclasses.replace(job.spec, init_seed=9))
    monitor_saves["kill_after"] = 2
    with pytest.raises(KeyboardInterrupt):
        lab.train([job, other], torch.arange(240))
    monitor_saves["kill_after"] = None
    assert len(list((tmp_path / PARTIAL).iterdir())) == 1
    lab.train([job], torch.arange(240))  # in groups of one, as a smaller --memory-mb would
    assert len(list((tmp_path / PARTIAL).iterdir())) == 1  # `other` can still resume from it
    lab.train([other], torch.arange(240))
    assert not list((tmp_path / PARTIAL).iterdir())
