"""An output folder's claim holds an exclusive lock for the whole run: a second run into a busy
folder is refused at once in one line naming it, with the same settings or others, and the lock
is given back when the run ends, however it ends."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kdlab import KdlabError
from kdlab.cli import main
from kdlab.io import LOCK, holding_claims, prepare_out

SETTINGS = {"dataset": "mnist", "epochs": 1, "device": "cpu"}
# a second process: claims the folder, says so, then holds it until its stdin closes, or is
# killed at once (a crash that runs no clean-up)
CLAIMER = """
import os, signal, sys
from pathlib import Path
from kdlab.io import prepare_out
prepare_out(Path(sys.argv[1]), "mythical-digit", {"dataset": "mnist", "epochs": 1, "device": "cpu"})
print("claimed", flush=True)
if sys.argv[2] == "crash":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
"""


def claimer(out: Path, mode: str) -> subprocess.Popen:
    """A second kdlab process that has claimed `out` (`mode` hold: until its stdin closes)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(out), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "claimed\n", child.stderr.read()
    return child


def free(out: Path) -> bool:
    """Whether no process holds `out`'s lock (probed with a lock of our own, given back)."""
    path = out / LOCK
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.fixture
def held(tmp_path):
    """A folder another process holds claimed; that process, ended after the test."""
    out = tmp_path / "out"
    child = claimer(out, "hold")
    yield out, child
    child.stdin.close()
    child.wait(timeout=60)


def test_a_busy_folder_is_refused_at_once_with_any_settings(held):
    out, child = held
    assert not free(out)
    for settings in (SETTINGS, {**SETTINGS, "epochs": 2}):
        with pytest.raises(KdlabError) as info:
            prepare_out(out, "mythical-digit", settings)
        assert str(info.value) == f"{out} is in use by another kdlab run (pid {child.pid})"
    child.stdin.close()  # the other run ends: the folder is free, and holds its claim
    assert child.wait(timeout=60) == 0
    assert free(out) and sorted(p.name for p in out.iterdir()) == ["kdlab-run.json"]
    with holding_claims():
        prepare_out(out, "mythical-digit", SETTINGS)  # a resume of the same settings


def test_a_run_into_a_busy_folder_trains_nothing(held, shared_data, capsys):
    out, child = held
    before = sorted(p.name for p in out.iterdir())
    code = main(["run", "mythical-digit", "--data-dir", str(shared_data), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err == f"kdlab: error: {out} is in use by another kdlab run (pid {child.pid})\n"
    assert sorted(p.name for p in out.iterdir()) == before  # no model store, no results


def test_the_lock_goes_with_a_process_that_crashed(tmp_path):
    out = tmp_path / "out"
    child = claimer(out, "crash")
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert (out / LOCK).exists() and free(out)  # its lock file stays behind, unlocked
    with holding_claims():
        prepare_out(out, "mythical-digit", SETTINGS)  # a resume: the stale lock file is no stranger
        assert not free(out)
    assert free(out) and not (out / LOCK).exists()


def test_the_lock_is_held_for_the_block_and_given_back_however_it_ends(tmp_path):
    out = tmp_path / "out"
    with holding_claims():
        prepare_out(out, "mythical-digit", SETTINGS)
        prepare_out(out, "mythical-digit", SETTINGS)  # this process may claim its own folder again
        with holding_claims():  # an inner block (Result.save's) keeps a claim made before it
            prepare_out(out, "mythical-digit", SETTINGS)
        assert not free(out)
    assert free(out) and not (out / LOCK).exists()
    with pytest.raises(RuntimeError), holding_claims():
        prepare_out(out, "mythical-digit", SETTINGS)
        raise RuntimeError("a run that fails after its claim")
    assert free(out) and not (out / LOCK).exists()


def test_a_refused_claim_changes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(KdlabError, match="not a kdlab run"), holding_claims():
        prepare_out(out, "mythical-digit", SETTINGS)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and free(out)


def test_a_command_that_fails_after_its_claim_gives_the_folder_back(shared_data, tmp_path, monkeypatch):
    def fail(*_args, **_kwargs):
        assert not free(out)  # held while the run runs
        raise RuntimeError("training failed")

    out = tmp_path / "out"
    monkeypatch.setattr("kdlab.protocols.common.Lab.teacher", fail)
    with pytest.raises(RuntimeError, match="training failed"):
        main(["run", "mythical-digit", "--data-dir", str(shared_data), "--out", str(out), "--quiet"])
    assert free(out) and not (out / LOCK).exists()
