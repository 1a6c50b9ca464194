"""HTTP for the sources: one session, retries that obey `Retry-After`, downloads streamed to disk atomically.

A source that cannot reach its provider fails with a `SourceError` that names the URL and the cause (and that
there may be no network), never with a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from common.retry import RETRY_STATUSES, RetryableError, RetryPolicy, call_with_retry, parse_retry_after
from ingest.sources import SourceError

__all__ = ["Http", "is_url"]

log = logging.getLogger("ingest.http")
USER_AGENT = "influx-stack-ingest/1.0"


def is_url(text: str) -> bool:
    return urlsplit(text).scheme in ("http", "https")


def _redact(url: str) -> str:
    """The URL without its query string, which may hold an API key."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class Http:
    def __init__(self, *, timeout: float = 30.0, policy: RetryPolicy | None = None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] | None = None):
        self.timeout = timeout
        self.policy = policy or RetryPolicy(attempts=4, base=1.0, cap=20.0, max_wait=120.0)
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self._sleep = sleep

    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        def attempt() -> requests.Response:
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise RetryableError(_cause(exc, url)) from None
            if response.status_code in RETRY_STATUSES:
                response.close()
                raise RetryableError(f"HTTP {response.status_code}",
                                     retry_after=parse_retry_after(response.headers.get("Retry-After")),
                                     status=response.status_code)
            return response

        def on_retry(number: int, exc: RetryableError, delay: float) -> None:
            log.warning("%s: attempt %d failed (%s); retrying in %.1fs", what, number, exc, delay)

        try:
            extra = {"sleep": self._sleep} if self._sleep else {}
            return call_with_retry(attempt, self.policy, on_retry=on_retry, **extra)
        except RetryableError as exc:
            hint = "" if exc.status else " (is there a network connection?)"
            raise SourceError(f"{what}: cannot reach {_redact(url)}: {exc}{hint}") from None

    def get_json(self, url: str, what: str, **kwargs: Any) -> Any:
        response = self._call("GET", url, what, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise SourceError(f"{what}: {_redact(url)} answered {response.status_code} with something that is not "
                              f"JSON: {response.text[:200]!r}") from None
        if not response.ok:
            raise SourceError(f"{what}: {_redact(url)} answered {response.status_code}: {_reason(body)}")
        return body

    def get(self, url: str, what: str, **kwargs: Any) -> requests.Response:
        return self._call("GET", url, what, **kwargs)

    def request(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        """Any request, retried like the others; an answer that is not retried is returned whatever its status."""
        return self._call(method, url, what, **kwargs)

    def download(self, url: str, folder: Path, what: str, *, progress: Callable[[int], None] | None = None,
                 **kwargs: Any) -> Path:
        """Stream `url` into a new file in `folder` (written under a temporary name, then renamed)."""
        response = self._call("GET", url, what, stream=True, **kwargs)
        if not response.ok:
            raise SourceError(f"{what}: {_redact(url)} answered {response.status_code}: {response.text[:200]!r}")
        return self.save(response, url, folder, what, progress=progress)

    def save(self, response: requests.Response, url: str, folder: Path, what: str, *,
             progress: Callable[[int], None] | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        name = os.path.basename(urlsplit(url).path) or "download"
        descriptor, temporary = tempfile.mkstemp(prefix=".", suffix=f"-{name}", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                for piece in response.iter_content(chunk_size=1 << 20):
                    handle.write(piece)
                    if progress:
                        progress(len(piece))
        except requests.RequestException as exc:
            os.unlink(temporary)
            raise SourceError(f"{what}: download of {_redact(url)} broke off: {_short(exc)}") from None
        target = folder / f"{Path(temporary).name.lstrip('.')}"
        os.replace(temporary, target)
        return target


def _cause(exc: BaseException, url: str) -> str:
    """The root of a requests connection error in a few words ("cannot resolve host x", "connection refused")."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return f"cannot resolve the host name {urlsplit(url).hostname}"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = str(reason)
        return "connection refused" if "refused" in text.lower() else f"cannot connect: {text.split(': ', 1)[-1]}"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError) or isinstance(exc, requests.Timeout):
        return "timed out"
    return f"{type(exc).__name__}: {_short(exc)}"


_SECRET_PARAMS = re.compile(r"([?&](?:appid|api[-_]?key|api-token|token|password)=)[^&\s)'\"]+", re.IGNORECASE)


def _short(exc: BaseException) -> str:
    """The exception's text, shortened, with secrets in any URL it quotes (appid=..., token=...) masked."""
    text = _SECRET_PARAMS.sub(r"\1***", str(exc))
    return text if len(text) < 300 else text[:300] + "..."


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("reason", "message", "error"):
            if body.get(key) not in (None, True, False):
                return str(body[key])
    return str(body)[:300]
