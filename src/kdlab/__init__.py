"""kdlab: reproduce and extend Hinton, Vinyals & Dean (2015), Distilling the Knowledge in a Neural Network.

import kdlab
result = kdlab.run("mythical-digit", epochs=2, seeds=3)
result.table, result.findings, result.figures, result.save("runs/x")
kdlab.sweep("sweeps/t-alpha.toml", epochs=1)   # a DataFrame of the points' results

The API is imported on first use (PEP 562): every module of kdlab imports this package first,
so importing `kdlab.config` or `kdlab.errors` loads neither torch nor the protocols.
"""

from kdlab.errors import KdlabError
from kdlab.version import __version__

__all__ = ["KdlabError", "Result", "__version__", "run", "sweep", "tune"]


def __getattr__(name: str) -> object:
    if name in ("run", "sweep", "tune"):
        from kdlab import api

        return getattr(api, name)
    if name == "Result":
        from kdlab.result import Result

        return Result
    raise AttributeError(f"module 'kdlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
