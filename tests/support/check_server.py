"""A local web server for the link and image checks: one path per kind of answer.

Bound to 127.0.0.1 on a free port; the slow path waits on an event that is set at teardown,
so nothing outlives the test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PNG = (  # a 1x1 transparent PNG
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)
BIG = 1024 * 1024 + 4096  # just over the 1 MB image limit


@dataclass
class Server:
    base: str
    requests: list[tuple[str, str]]  # (method, path) in arrival order

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def _handler(stop: threading.Event, log: list[tuple[str, str]]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _answer(self, status: int, body: bytes = b"", headers: dict | None = None,
                    length: bool = True) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if length:
                self.send_header("Content-Length", str(len(body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _route(self) -> None:
            log.append((self.command, self.path))
            path = self.path.split("?", 1)[0]
            page = b"<html><body>ok</body></html>"
            if path.startswith("/ok"):
                self._answer(200, page, {"Content-Type": "text/html"})
            elif path == "/moved":
                self._answer(301, b"", {"Location": "/ok/target"})
            elif path == "/moved-to-missing":
                self._answer(302, b"", {"Location": "/missing"})
            elif path == "/missing":
                self._answer(404, b"not found")
            elif path == "/broken":
                self._answer(500, b"boom")
            elif path == "/slow":
                stop.wait(10)  # never answers within any test timeout
            elif path == "/bot-wall":  # what Cloudflare answers a robot
                self._answer(403, b"Just a moment...", {"cf-mitigated": "challenge",
                                                        "Server": "cloudflare"})
            elif path == "/head-refused":
                if self.command == "HEAD":
                    self._answer(405, b"", {"Allow": "GET"})
                else:
                    self._answer(200, page, {"Content-Type": "text/html"})
            elif path == "/img.png":
                self._answer(200, PNG, {"Content-Type": "image/png"})
            elif path == "/big.png":  # no Content-Length: the checker has to count
                self._answer(200, b"\0" * BIG, {"Content-Type": "image/png"}, length=False)
            else:
                self._answer(404, b"no such test path")

        do_GET = _route
        do_HEAD = _route

    return Handler


@contextmanager
def running() -> Iterator[Server]:
    stop = threading.Event()
    log: list[tuple[str, str]] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stop, log))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", log)
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def link_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # A developer's proxy settings must not route loopback requests elsewhere.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with running() as server:
        yield server
