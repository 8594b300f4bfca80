"""A local HTTP server (127.0.0.1, a free port) for download tests: serves the files of a folder and honours
``Range: bytes=N-`` as real servers do, or misbehaves on purpose (``mode``)."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        path = srv.root / self.path.split("?")[0].lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if m and srv.mode != "norange":
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.mode == "cut" and len(srv.requests) == 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class RangeServer(http.server.ThreadingHTTPServer):
    """``root``: the folder served. ``mode``: ``"range"`` (honours Range), ``"norange"`` (always the whole file
    with 200), ``"cut"`` (like ``"range"``, but the first response stops half-way and closes). ``requests``: the
    ``(path, Range header)`` of every request."""

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.mode, self.requests = root, "range", []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"

    @property
    def ranges(self) -> list[str | None]:
        """The Range header of every request, in order."""
        return [r for _, r in self.requests]


@contextlib.contextmanager
def serve(root: Path) -> Iterator[RangeServer]:
    root.mkdir(parents=True, exist_ok=True)
    srv = RangeServer(root)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
