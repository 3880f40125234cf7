"""kdlab's version, at the bottom so that provenance and `kdlab --version` read it without
importing the API."""

__version__ = "0.1.0"
