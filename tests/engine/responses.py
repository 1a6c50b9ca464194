"""What the engine makes of a request plugin's return value (its Flask-like conventions, InfluxDB 3.10):

- a str is the body, `Content-Type: text/html`, status 200;
- a dict or list is serialized with `json.dumps`, `Content-Type: application/json`, status 200;
- a tuple of 1-3 items is (body, status) / (body, headers) / (body, status, headers), the body converted as
  above (anything else as `str()` with text/plain) and the given headers added to the default ones;
- an iterable of str/bytes is concatenated as text/html;
- anything else is an error (HTTP 500).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Response", "UnsupportedResponse", "to_response"]


class UnsupportedResponse(TypeError):
    pass


@dataclass
class Response:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        for key, value in self.headers.items():
            if key.lower() == "content-type":
                return value
        return ""

    def json(self) -> Any:
        return json.loads(self.body)


def _body(value: Any) -> tuple[str, dict[str, str]]:
    if isinstance(value, str):
        return value, {"Content-Type": "text/html"}
    if isinstance(value, dict | list):
        return json.dumps(value), {"Content-Type": "application/json"}
    return str(value), {"Content-Type": "text/plain"}


def to_response(result: Any) -> Response:
    if isinstance(result, tuple) and 0 < len(result) <= 3:
        body, headers = _body(result[0])
        status = 200
        if len(result) >= 2:
            second = result[1]
            if isinstance(second, int) and not isinstance(second, bool):
                status = second if 0 <= second <= 65535 else 500
            elif isinstance(second, Mapping):
                headers.update({str(k): str(v) for k, v in second.items()})
        if len(result) == 3:
            if not isinstance(result[2], Mapping):
                raise UnsupportedResponse("expected a dictionary in header item")
            headers.update({str(k): str(v) for k, v in result[2].items()})
        return Response(status, body, headers)
    if isinstance(result, str):
        return Response(200, result, {"Content-Type": "text/html"})
    if isinstance(result, dict | list):
        return Response(200, json.dumps(result), {"Content-Type": "application/json"})
    if hasattr(result, "__iter__"):
        parts = []
        for item in result:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, bytes):
                parts.append(item.decode("utf-8", errors="ignore"))
        return Response(200, "".join(parts), {"Content-Type": "text/html"})
    raise UnsupportedResponse(f"Unsupported return type from Python function: {type(result).__name__}")
