"""The loopback stand-ins the fast tests use answer as the real servers do: the same requests to both, the same
status codes and bodies.

tests/support/influxdb2.py and tests/support/influxdb3.py are written from the servers' source; this checks them
against the servers themselves, started from the binaries the native provider uses (INFLUXD_BIN, INFLUXDB3_BIN
or PATH). Each server runs fresh, on loopback, just for this module. Skipped without the binaries.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.stacks import wait_for
from tests.integration.stacks.native import Process, binary, free_port
from tests.support.influxdb2 import InfluxDB2
from tests.support.recorder import RecordingServer

pytestmark = pytest.mark.integration

ORG, BUCKET, TOKEN2 = "conformance", "first", "conformance-token-0123456789"


def _binary(variable: str, name: str) -> Path:
    found = binary(variable, name)
    if found is None:
        pytest.skip(f"stand-in conformance: no {name} binary (set {variable} or put {name} on PATH)")
    return found


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh influxd, set up with an org, a bucket and an operator token."""
    influxd = _binary("INFLUXD_BIN", "influxd")
    folder = tmp_path_factory.mktemp("influxd")
    port = free_port()
    server = Process("influxd", [str(influxd)], {
        "PATH": os.environ.get("PATH", ""), "INFLUXD_BOLT_PATH": str(folder / "influxd.bolt"),
        "INFLUXD_ENGINE_PATH": str(folder / "engine"), "INFLUXD_SQLITE_PATH": str(folder / "influxd.sqlite"),
        "INFLUXD_HTTP_BIND_ADDRESS": f"127.0.0.1:{port}", "INFLUXD_REPORTING_DISABLED": "true"},
        folder / "influxd.log")
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("influxd", lambda: requests.get(f"{url}/health", timeout=5).ok, timeout=60, interval=0.5)
        setup = requests.post(f"{url}/api/v2/setup", timeout=30, json={
            "username": "conformance", "password": "conformance-password", "org": ORG, "bucket": BUCKET,
            "token": TOKEN2})
        assert setup.status_code == 201, setup.text
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def influxd_fake(influxd: str) -> InfluxDB2:
    """The stand-in with the same org, bucket and token (and the real server's org id)."""
    real_org = requests.get(f"{influxd}/api/v2/orgs", params={"org": ORG},
                            headers={"Authorization": f"Token {TOKEN2}"}, timeout=10).json()["orgs"][0]["id"]
    fake = InfluxDB2(token=TOKEN2, org=ORG, org_id=real_org)
    fake.add_bucket(BUCKET)
    return fake


@pytest.fixture(scope="module")
def influxd_standin(influxd_fake: InfluxDB2) -> Iterator[str]:
    with RecordingServer(influxd_fake) as server:
        yield server.url


def _answer(response: requests.Response) -> tuple[int, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body


Exchange = Callable[[str], requests.Response]

AUTH2 = {"Authorization": f"Token {TOKEN2}"}
INFLUXDB2_EXCHANGES: dict[str, Exchange] = {
    "a bucket lookup that finds nothing": lambda url: requests.get(
        f"{url}/api/v2/buckets", params={"org": ORG, "name": "missing"}, headers=AUTH2, timeout=10),
    "an org lookup that finds nothing": lambda url: requests.get(
        f"{url}/api/v2/orgs", params={"org": "missing"}, headers=AUTH2, timeout=10),
    "an unknown token": lambda url: requests.get(
        f"{url}/api/v2/buckets", params={"org": ORG}, headers={"Authorization": "Token nope"}, timeout=10),
    "a write to a missing bucket": lambda url: requests.post(
        f"{url}/api/v2/write", params={"org": ORG, "bucket": "missing"}, data="m f=1 1", headers=AUTH2, timeout=10),
}


@pytest.mark.parametrize("what", sorted(INFLUXDB2_EXCHANGES))
def test_influxdb2_stand_in_answers_as_influxd(influxd, influxd_standin, what):
    exchange = INFLUXDB2_EXCHANGES[what]
    assert _answer(exchange(influxd_standin)) == _answer(exchange(influxd)), what


def test_influxdb2_bucket_creation_and_conflict_as_influxd(influxd, influxd_standin, influxd_fake):
    org_id = influxd_fake.org_id
    for url in (influxd, influxd_standin):
        first = requests.post(f"{url}/api/v2/buckets", json={"orgID": org_id, "name": "twice", "retentionRules": []},
                              headers=AUTH2, timeout=10)
        assert first.status_code == 201 and first.json()["name"] == "twice"
    again = [_answer(requests.post(f"{url}/api/v2/buckets", json={"orgID": org_id, "name": "twice"},
                                   headers=AUTH2, timeout=10)) for url in (influxd, influxd_standin)]
    assert again[0] == again[1] == (422, {"code": "conflict", "message": "bucket with name twice already exists"})
    missing_org = [_answer(requests.post(f"{url}/api/v2/buckets", json={"name": "x"}, headers=AUTH2, timeout=10))
                   for url in (influxd, influxd_standin)]
    assert missing_org[0] == missing_org[1]


def _flux_values(url: str, measurement: str) -> list[str]:
    flux = (f'from(bucket: "{BUCKET}") |> range(start: 0) |> filter(fn: (r) => r._measurement == "{measurement}") '
            '|> keep(columns: ["_value"])')
    text = requests.post(f"{url}/api/v2/query", params={"org": ORG}, json={"query": flux, "type": "flux"},
                         headers={**AUTH2, "Accept": "application/csv"}, timeout=30).text
    return sorted(line.rsplit(",", 1)[-1].strip() for line in text.splitlines()
                  if line.startswith(",_result") or line.startswith(",,"))


def test_influxdb2_writes_refuse_as_influxd(influxd, influxd_standin, influxd_fake):
    """A field whose type differs: 422 partial write, the good line kept. A line that does not parse: 400,
    nothing of the request written."""
    answers = {}
    for name, url in (("influxd", influxd), ("stand-in", influxd_standin)):
        write = lambda body, url=url: requests.post(  # noqa: E731
            f"{url}/api/v2/write", params={"org": ORG, "bucket": BUCKET, "precision": "ns"}, data=body,
            headers=AUTH2, timeout=10)
        assert write("typed,host=a v=1i 1").status_code == 204
        conflict = write("typed,host=a v=2i 2\ntyped,host=b v=2.5 3")
        parse = write("parsed,host=a v=1 1\nparsed,host=a v= 2\nparsed,host=a v=3 3")
        answers[name] = (_answer(conflict), parse.status_code, parse.json()["code"])
    assert answers["stand-in"] == answers["influxd"]
    assert answers["influxd"][0][0] == 422 and answers["influxd"][1] == 400
    assert _flux_values(influxd, "typed") == ["1", "2"] and _flux_values(influxd, "parsed") == []
    kept = {(p.measurement, p.tags.get("host"), p.fields["v"]) for p in influxd_fake.points[BUCKET]}
    assert kept == {("typed", "a", 1), ("typed", "a", 2)}
