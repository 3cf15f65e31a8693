"""A tiny HTTP source on 127.0.0.1 served from a thread, for tests that need a misbehaving one."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Base handler that keeps the test output clean."""

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port; yields a source URL on it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
