"""A loopback webhook receiver for the whole-stack alert tests: records every JSON body Grafana POSTs to it, with
its Authorization header.

Grafana's webhook integration sends one JSON document per notification (status, alerts with labels and
annotations, ...). The receiver keeps at most MAX_BODIES of them and answers 200; it stops with the session.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebhookReceiver"]

MAX_BODIES = 1000
MAX_BODY_BYTES = 1 << 20


class WebhookReceiver:
    """`with WebhookReceiver("127.0.0.1") as hook: hook.port, hook.bodies()`."""

    def __init__(self, host: str = "127.0.0.1"):
        received: list[dict[str, Any]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"unparsed": raw.decode("utf-8", "replace")}
                with lock:
                    if len(received) < MAX_BODIES:
                        received.append({"path": self.path, "body": body,
                                         "authorization": self.headers.get("Authorization")})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self._received, self._lock = received, lock
        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [item["body"] for item in self._received]

    def authorizations(self) -> list[str | None]:
        """The Authorization header of every notification received so far (None where there was none)."""
        with self._lock:
            return [item["authorization"] for item in self._received]

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        """The firing alerts of that name in every notification received so far."""
        return [alert for body in self.bodies() for alert in body.get("alerts", [])
                if alert.get("status") == "firing" and alert.get("labels", {}).get("alertname") == alertname]
