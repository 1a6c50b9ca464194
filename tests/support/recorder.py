"""A loopback HTTP server that records every request and answers as the test scripts it.

It stands in for InfluxDB (2 or 3), Grafana or a data provider so tests can check exactly what our code
sends: method, path, query, headers, body (gzip undone). It never pretends to be the stack: each test
decides what it answers, through a `responder(request) -> Reply` callable.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Recorded", "RecordingServer", "Reply"]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_body: bytes
    body: bytes  # after Content-Encoding: gzip is undone

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Reply:
    status: int = 204
    body: bytes | str | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    close_connection: bool = False  # drop the socket without answering (a server vanishing mid-request)
    pace: float = 0.0  # seconds between 64 KiB pieces of the body (a slow link, or a server still reading disk)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.body is None:
            return b"", headers
        if isinstance(self.body, (dict, list)):
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode(), headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        return self.body, headers


Responder = Callable[[Recorded], Reply]


class RecordingServer:
    """Use as a context manager: `with RecordingServer(responder) as server: ... server.url`."""

    def __init__(self, responder: Responder | None = None, *, slow_body_seconds: float = 0.0):
        """`slow_body_seconds`: for that long, each request body is read 64 KiB at a time with a pause between
        pieces, then at full speed (a server whose disk is busy when an upload starts)."""
        self.responder: Responder = responder or (lambda request: Reply())
        self.slow_body_seconds = slow_body_seconds
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    def start(self, port: int = 0) -> RecordingServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One buffered write per response and no Nagle delay: keep-alive clients are not stalled 40 ms
            # by delayed ACKs between the header and body segments.
            wbufsize = -1
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = outer._read_body(self.rfile, length)
                body = raw
                if (self.headers.get("Content-Encoding") or "").lower() == "gzip" and raw:
                    body = gzip.decompress(raw)
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                    headers={key.lower(): value for key, value in self.headers.items()},
                    raw_body=raw, body=body)
                with outer._lock:
                    outer.requests.append(recorded)
                reply = outer.responder(recorded)
                if reply.close_connection:
                    self.close_connection = True
                    self.connection.close()
                    return
                payload, headers = reply.encoded()
                self.send_response(reply.status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                step = 65536 if reply.pace else max(len(payload), 1)
                for start in range(0, len(payload), step):
                    if start:
                        self.wfile.flush()
                        time.sleep(reply.pace)
                    self.wfile.write(payload[start:start + step])

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def _read_body(self, stream, length: int) -> bytes:
        pieces, remaining = [], length
        slow_until = time.monotonic() + self.slow_body_seconds
        while remaining and time.monotonic() < slow_until:
            pieces.append(stream.read(min(remaining, 65536)))
            remaining -= len(pieces[-1])
            time.sleep(0.05)
        if remaining:
            pieces.append(stream.read(remaining))
        return b"".join(pieces)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def matching(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)]
