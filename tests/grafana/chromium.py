"""Screenshots of pages that need an auth header, with headless Chromium over the DevTools protocol (CDP).

Chromium's `--screenshot` flag cannot send headers, and Grafana's pages load their data with XHRs that need
credentials too. So Chromium starts with `--remote-debugging-port=0` (it writes the port it chose to
`DevToolsActivePort` in the profile folder), and one page target is driven over its WebSocket: the headers go to
`Network.setExtraHTTPHeaders` (sent with every request of the page), the page loads, and the screenshot is taken
once the network has been idle for a while (`Page.captureScreenshot`).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.request import urlopen

import websocket

__all__ = ["FLAGS", "Chromium", "ChromiumError", "chromium_path"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

REQUEST_EVENTS = {"Network.requestWillBeSent", "Network.responseReceived", "Network.loadingFinished",
                  "Network.loadingFailed"}


class ChromiumError(RuntimeError):
    pass


def chromium_path() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        raise ChromiumError("chromium is not installed (.ci/run installs Debian's chromium package)")
    return found


class Chromium:
    """`with Chromium() as browser: browser.screenshot(url, path, headers)`."""

    def __init__(self, width: int = 1600, height: int = 1000, start_timeout: float = 30.0):
        self.width, self.height, self.start_timeout = width, height, start_timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: websocket.WebSocket | None = None
        self._next_id = 0
        self._in_flight: set[str] = set()
        self._last_activity = time.monotonic()
        self._loaded = False

    def __enter__(self) -> Chromium:
        profile = Path(self._profile.name)
        self._process = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise ChromiumError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            pages = [item for item in json.load(answer) if item.get("type") == "page"]
        if not pages:
            self.__exit__(None, None, None)
            raise ChromiumError("chromium has no page target")
        self._socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30,
                                                   suppress_origin=True)
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._profile.cleanup()

    # ---- the protocol ----------------------------------------------------------------------------------
    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method", ""), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self._in_flight.add(params["requestId"])
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            self._in_flight.discard(params["requestId"])
        elif method == "Page.loadEventFired":
            self._loaded = True
        if method in REQUEST_EVENTS:  # not WebSocket frames: Grafana Live keeps its socket open and chatty
            self._last_activity = time.monotonic()

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        assert self._socket is not None
        self._socket.settimeout(timeout)
        try:
            return json.loads(self._socket.recv())
        except websocket.WebSocketTimeoutException:
            return None

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and wait for its answer, noting the events that arrive meanwhile."""
        assert self._socket is not None, "use Chromium as a context manager"
        self._next_id += 1
        number = self._next_id
        self._socket.send(json.dumps({"id": number, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._receive(max(0.1, deadline - time.monotonic()))
            if message is None:
                continue
            if message.get("id") == number:
                if "error" in message:
                    raise ChromiumError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)
        raise ChromiumError(f"{method}: no answer in {timeout:.0f} s")

    def _settle(self, quiet: float, timeout: float) -> None:
        """Until the page has loaded and no request has been in flight (or started) for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = not self._in_flight and time.monotonic() - self._last_activity >= quiet
            if self._loaded and idle:
                return
            message = self._receive(0.2)
            if message is not None:
                self._event(message)
        raise ChromiumError(f"the page was still loading after {timeout:.0f} s ({len(self._in_flight)} requests open)")

    def screenshot(self, url: str, path: Path, headers: dict[str, str] | None = None, *, quiet: float = 2.0,
                   timeout: float = 90.0) -> Path:
        """Load `url` with `headers` on every request and save a PNG of the viewport once the page is idle."""
        self.call("Network.setExtraHTTPHeaders", {"headers": dict(headers or {})})
        self._loaded, self._in_flight = False, set()
        self._last_activity = time.monotonic()
        navigation = self.call("Page.navigate", {"url": url})
        if navigation.get("errorText"):
            raise ChromiumError(f"{url}: {navigation['errorText']}")
        self._settle(quiet, timeout)
        shot = self.call("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value in the page (JSON-serialisable values only)."""
        answer = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise ChromiumError(f"{expression}: {answer['exceptionDetails'].get('text')}")
        return answer["result"].get("value")
