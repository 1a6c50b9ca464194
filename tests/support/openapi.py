"""Check requests our code sent against InfluxDB 3 Core's published OpenAPI description.

Where the description and the server disagree the server wins (see ../shared/specs/README.md): those
known differences are applied here, in one place, so tests assert what the real server accepts.
"""

from __future__ import annotations

import functools
import json

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

from tests.support.paths import INFLUXDB3_SPEC
from tests.support.recorder import Recorded

__all__ = ["influxdb3_api", "validate_influxdb3_request"]


@functools.cache
def _load() -> OpenAPI:
    # The published file has one malformed example, so the spec itself is not validated; requests are.
    return OpenAPI.from_file_path(str(INFLUXDB3_SPEC), config=Config(spec_validator_cls=None))


def influxdb3_api() -> OpenAPI:
    """The parsed description, or skip the calling test when ../shared/specs is absent."""
    if not INFLUXDB3_SPEC.is_file():
        pytest.skip(f"InfluxDB 3 OpenAPI description not found at {INFLUXDB3_SPEC}")
    return _load()


def validate_influxdb3_request(recorded: Recorded) -> None:
    """Raise if `recorded` is not a request InfluxDB 3 Core documents (path, method, query, body)."""
    api = influxdb3_api()
    headers = {key: value for key, value in recorded.headers.items()
               if key not in ("host", "content-length", "content-encoding", "accept-encoding")}
    prepared = requests.Request(
        recorded.method, "https://localhost:8181" + recorded.path, params=recorded.query,
        data=recorded.body or None, headers=headers).prepare()
    api.validate_request(RequestsOpenAPIRequest(prepared))
    if recorded.path == "/api/v3/configure/processing_engine_trigger" and recorded.method == "POST":
        # Known difference: the server requires both settings, lowercase (the spec's default hides it).
        settings = json.loads(recorded.body).get("trigger_settings") or {}
        missing = {"run_async", "error_behavior"} - settings.keys()
        if missing:
            raise AssertionError(f"trigger_settings lacks {sorted(missing)}; the server requires both")
