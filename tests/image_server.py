"""A loopback HTTP server for image-URL tests: serves files by name, and a few misbehaving routes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serving(files: dict[str, bytes]) -> Iterator[str]:
    """Yields the server's base URL. /redirect/NAME redirects to /NAME, /away/URL to URL; /slow answers after
    30 s; /huge claims 100 MB."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            name = self.path.lstrip("/")
            if name.startswith(("redirect/", "away/")):
                self.send_response(302)
                location = name.removeprefix("away/") if name.startswith("away/") else "/" + name[len("redirect/"):]
                self.send_header("Location", location)
                self.end_headers()
            elif name == "slow":
                time.sleep(30)
            elif name == "huge":
                self.send_response(200)
                self.send_header("Content-Length", str(100 * 1024 * 1024))
                self.end_headers()
            elif name in files:
                self.send_response(200)
                self.send_header("Content-Length", str(len(files[name])))
                self.end_headers()
                self.wfile.write(files[name])
            else:
                self.send_error(404)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
