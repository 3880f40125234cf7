"""Shared fixtures for the kdlab tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# The repository sits next to a read-only `shared` folder that holds real, verified data sets.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder (`../shared/data` from the repo root); skip if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is missing (real-data tests need it)")
    return SHARED_DATA


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty cache (KDLAB_CACHE) and no KDLAB_DATA: the real ones stay untouched and never
    leak into a test of the data layer."""
    monkeypatch.delenv("KDLAB_DATA", raising=False)
    path = tmp_path / "cache"
    monkeypatch.setenv("KDLAB_CACHE", str(path))
    return path


@dataclass
class FileServer:
    """What the local server serves (path -> bytes, 404 otherwise) and the paths requested."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """An HTTP server on 127.0.0.1 (any free port) in a thread, shut down after the test."""
    state = FileServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state.requested.append(self.path)
            body = state.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404, "File not found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # keep the test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    # Make sure no proxy setting in the environment reroutes the requests away from 127.0.0.1.
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
