"""A command line that answers at once: its help, every protocol's options and a bad setting's
one-line error come without importing torch, scipy, pandas, matplotlib or Ray, which only a
run needs. Each case runs in a fresh interpreter, which then reports the modules it loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kdlab
from kdlab import protocols

HEAVY = ("torch", "scipy", "pandas", "matplotlib", "ray")
PROBE = """
import json, sys
{code}
print(json.dumps({{"exit": exit, "loaded": sorted({{m.split(".")[0] for m in sys.modules}})}}))
"""
COMMAND = """
from kdlab.cli import main
try:
    exit = main(sys.argv[1:])
except SystemExit as e:
    exit = e.code
"""


def probe(code: str, *argv: str) -> subprocess.CompletedProcess:
    """`code` run in a fresh interpreter on this kdlab; its last line of output says how it
    exited and the top-level modules it loaded."""
    env = {**os.environ, "PYTHONPATH": str(Path(kdlab.__file__).parents[1])}
    program = PROBE.format(code=code)
    return subprocess.run(
        [sys.executable, "-c", program, *argv], capture_output=True, text=True, env=env, timeout=120
    )


def report(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        *(["run", name, "--help"] for name in protocols.names()),
        ["sweep", "--help"],
        ["tune", "--help"],
        ["data", "pack", "--help"],
        ["reproduce", "--help"],
        ["docs", "--help"],
    ],
    ids=" ".join,
)
def test_help_loads_nothing_heavy(argv):
    done = report(probe(COMMAND, *argv))
    assert done["exit"] == 0
    assert not set(done["loaded"]) & set(HEAVY)


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["run", "mythical-digit", "--epochs", "-1"], "--epochs must be >= 1, not -1"),
        (["run", "every-digit", "--calibration", "magic"], "--calibration must be one of"),
        (["run", "hinton2015", "--budget", "huge"], "--budget must be one of full, quick, not 'huge'"),
        (["run", "soft-regularizer", "--min-epochs", "9", "--max-epochs", "3"], "--min-epochs (9)"),
        (["run", "mythical-digit", "--device", "tpu"], "--device must be cpu, cuda or auto"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_bad_setting_is_one_line_without_loading_anything_heavy(argv, error):
    done = probe(COMMAND, *argv)
    result = report(done)
    assert result["exit"] == 1
    assert not set(result["loaded"]) & set(HEAVY)
    (line,) = done.stderr.splitlines()
    assert line.startswith("kdlab: error: ") and error in line


def test_settings_and_errors_import_without_torch():
    """The bottom of the layers and every settings class load alone, as `import kdlab` does."""
    code = """
import kdlab, kdlab.config
from kdlab.errors import KdlabError
from kdlab import protocols
assert kdlab.KdlabError is KdlabError
configs = [protocols.get(name).settings() for name in protocols.names()]
exit = 0
"""
    assert not set(report(probe(code))["loaded"]) & set(HEAVY)


def test_kdlab_sweep_stays_the_api_function_after_its_subpackage_is_imported():
    """`kdlab.sweep` names both a function and a subpackage; importing the subpackage (as the
    command line and the runner do) must not replace the function users call."""
    code = (
        "import kdlab.sweep.runner, kdlab.sweep.tune, kdlab; "
        "assert kdlab.sweep.__module__ == 'kdlab.api', kdlab.sweep; "
        "assert callable(kdlab.run) and callable(kdlab.tune)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
