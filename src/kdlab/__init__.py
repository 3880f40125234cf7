"""kdlab: reproduce and extend Hinton, Vinyals & Dean (2015), Distilling the Knowledge in a Neural Network."""

__version__ = "0.1.0"


class KdlabError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits non-zero."""
