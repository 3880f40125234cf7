"""Sweeps and configuration search over a protocol's settings, run as Ray tasks and trials.

Ray is optional: it is imported only when a sweep or a search starts (`require_ray`), so
`kdlab run` works without it.
"""

from __future__ import annotations

from types import ModuleType

from kdlab.errors import KdlabError

INSTALL_HINT = "pip install 'kdlab[ray]'"


def require_ray() -> ModuleType:
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise KdlabError(f"sweeps and searches run on Ray, which is not installed: {INSTALL_HINT}") from None
    return ray
