"""What the engine makes of a request plugin's return value: `process_flask_response` and
`process_response_part` in influxdb3_py_api/src/system_py.rs (v3.10.1; v3.6.0 has the same rules):

- an object whose `__flask_response__()` returns True: `status_code` (an int 0..65535), `get_data()` (must be
  a str: a real Flask response returns bytes and fails) and `headers` (must be a dict of str);
- a tuple of 1-3 items: (body, status) / (body, headers) / (body, status, headers); the body as a str
  (`text/html`), a dict or list (`json.dumps`, `application/json`) or anything else as `str()` (`text/plain`);
  an int-like second item (anything with `__index__`, bools included) is the status, a dict the headers,
  anything else is ignored; a third item must be a dict ("expected a dictionary in header item");
- a str is the body, `Content-Type: text/html`, status 200;
- a dict or list is serialized with Python's `json.dumps` (default separators), `application/json`, 200;
- anything iterable (other tuples too) is concatenated: str items, and bytes items that are valid UTF-8;
  other items are skipped; `text/html`;
- anything else: "Unsupported return type from Python function".
Header values must be str (pyo3 extracts HashMap<String, String>). A status outside 100..=999 becomes 500
(`StatusCode::from_u16(..).unwrap_or(INTERNAL_SERVER_ERROR)`, plugins.rs). Every failure is an error of the
whole call: HTTP 500 `{"error": "<message>"}` and the plugin's queued writes are dropped (engine.py).
"""

from __future__ import annotations

import contextlib
import json
import operator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Response", "UnsupportedResponse", "to_response"]


class UnsupportedResponse(TypeError):
    """The conversion failed; str() is the error text the server puts in `{"error": ...}`."""


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


def _type_error(value: Any, target: str) -> UnsupportedResponse:
    # pyo3 CastError -> TypeError, shown by PyErr's Display as "{type}: {message}"
    return UnsupportedResponse(f"TypeError: '{type(value).__qualname__}' object is not an instance of '{target}'")


def _string_map(value: Any) -> dict[str, str]:
    """`extract::<HashMap<String, String>>()`."""
    if not isinstance(value, dict):
        raise _type_error(value, "dict")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _type_error(key, "str")
        if not isinstance(item, str):
            raise _type_error(item, "str")
        out[str(key)] = str(item)
    return out


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except Exception as exc:
        raise UnsupportedResponse(f"{type(exc).__qualname__}: {exc}") from None


def _body(value: Any) -> tuple[str, dict[str, str]]:
    """`process_response_part`."""
    if isinstance(value, str):
        return str(value), {"Content-Type": "text/html"}
    if isinstance(value, dict | list):
        return _dumps(value), {"Content-Type": "application/json"}
    return str(value), {"Content-Type": "text/plain"}


def _status(code: int) -> int:
    # `status_code.try_into().unwrap_or(500)` (u16), then `StatusCode::from_u16` (100..=999) or 500
    return code if 100 <= code <= 999 else 500


def _int_like(value: Any) -> int | None:
    """`extract::<i64>()`: anything with __index__ that fits in an i64."""
    try:
        number = operator.index(value)
    except TypeError:
        return None
    return number if -(2**63) <= number < 2**63 else None


def _flask(result: Any) -> Response | None:
    method = getattr(result, "__flask_response__", None)
    if method is None:
        return None
    try:
        flagged = method()
    except Exception:
        return None
    if flagged is not True:
        return None
    code = _int_like(result.status_code)
    if code is None or not 0 <= code <= 65535:
        raise _type_error(result.status_code, "int")
    body = result.get_data()
    if not isinstance(body, str):
        raise _type_error(body, "str")
    return Response(_status(code), body, _string_map(result.headers))


def to_response(result: Any) -> Response:
    try:
        return _convert(result)
    except UnsupportedResponse:
        raise
    except Exception as exc:  # a Python error raised while converting: PyErr's Display
        raise UnsupportedResponse(f"{type(exc).__qualname__}: {exc}") from None


def _convert(result: Any) -> Response:
    flask = _flask(result)
    if flask is not None:
        return flask
    if isinstance(result, tuple) and 0 < len(result) <= 3:
        body, headers = _body(result[0])
        status = 200
        if len(result) >= 2:
            second = result[1]
            code = _int_like(second)
            if code is not None:
                status = _status(code)
            elif isinstance(second, dict):
                headers.update(_string_map(second))
            if len(result) == 3:
                if not isinstance(result[2], dict):
                    raise UnsupportedResponse("expected a dictionary in header item")
                headers.update(_string_map(result[2]))
        return Response(status, body, headers)
    if isinstance(result, str):
        return Response(200, str(result), {"Content-Type": "text/html"})
    if isinstance(result, dict | list):
        return Response(200, _dumps(result), {"Content-Type": "application/json"})
    if hasattr(result, "__iter__"):
        parts = []
        for item in result:
            if isinstance(item, str):
                parts.append(str(item))
            elif isinstance(item, bytes):
                # `if let Ok(s) = std::str::from_utf8(b)`: an invalid item is skipped
                with contextlib.suppress(UnicodeDecodeError):
                    parts.append(item.decode("utf-8"))
        return Response(200, "".join(parts), {"Content-Type": "text/html"})
    raise UnsupportedResponse("Unsupported return type from Python function")
