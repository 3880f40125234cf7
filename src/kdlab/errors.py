"""The one exception kdlab raises for a user to act on: the bottom of every layer, so that
any module may raise it without importing anything else of kdlab."""


class KdlabError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits non-zero."""
