"""kdlab: reproduce and extend Hinton, Vinyals & Dean (2015), Distilling the Knowledge in a Neural Network.

import kdlab
result = kdlab.run("mythical-digit", epochs=2, seeds=3)
result.table, result.findings, result.figures, result.save("runs/x")
kdlab.sweep("sweeps/t-alpha.toml", epochs=1)   # a DataFrame of the points' results

Every module of kdlab imports this package first, so it loads only what is light: the API's
functions (`kdlab.api` defers torch and the protocols to a call) and `Result` on first use
(PEP 562). The functions are bound here, after `kdlab.api` has imported the subpackage
`kdlab.sweep`: importing a subpackage sets the package's attribute of its name, so bound later
(or looked up lazily) `kdlab.sweep` would be the subpackage, not the function.
"""

from kdlab.api import run, sweep, tune
from kdlab.errors import KdlabError
from kdlab.version import __version__

__all__ = ["KdlabError", "Result", "__version__", "run", "sweep", "tune"]


def __getattr__(name: str) -> object:
    if name == "Result":
        from kdlab.result import Result

        return Result
    raise AttributeError(f"module 'kdlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
