"""kdlab: reproduce and extend Hinton, Vinyals & Dean (2015), Distilling the Knowledge in a Neural Network.

import kdlab
result = kdlab.run("mythical-digit", epochs=2, seeds=3)
result.table, result.findings, result.figures, result.save("runs/x")
kdlab.sweep("sweeps/t-alpha.toml", epochs=1)   # a DataFrame of the points' results
"""

__version__ = "0.1.0"


class KdlabError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits non-zero."""


from kdlab.api import run, sweep, tune  # noqa: E402  (the API needs KdlabError defined first)
from kdlab.result import Result  # noqa: E402

__all__ = ["KdlabError", "Result", "__version__", "run", "sweep", "tune"]
