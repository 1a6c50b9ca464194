"""Least privilege on the real InfluxDB 2 (README, "Security"): each service's token does what it needs and is
refused the rest with the server's own answer, a second `make up` creates nothing, a lost token file is replaced
and the old token revoked. The answers asserted here are the server's words (influxdata/influxdb v2.9.1 and
v2.7.12: http/write_handler.go, http/delete_handler.go, authorizer/authorize.go,
query/stdlib/influxdata/influxdb/provider.go and operators.go); tests/support/influxdb2.py answers the same and
tests/integration/test_standins.py compares the two.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from grafana.datasources import FLUX_BUCKETS

pytestmark = pytest.mark.integration

OTHER = "security-other"  # a bucket neither service may touch
INGEST_BUCKETS = ("telemetry", "monitoring", "history")  # ingest/buckets.yaml


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def _answer(response: requests.Response) -> tuple[int, object]:
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


@pytest.fixture(scope="module")
def org_id(stack) -> str:
    return requests.get(f"{stack.influxdb2_url}/api/v2/orgs", params={"org": stack.env["INFLUXDB2_ORG"]},
                        headers=stack.influxdb2_headers, timeout=30).json()["orgs"][0]["id"]


@pytest.fixture(scope="module")
def other_bucket(stack, org_id) -> Iterator[str]:
    created = requests.post(f"{stack.influxdb2_url}/api/v2/buckets", json={"orgID": org_id, "name": OTHER},
                            headers=stack.influxdb2_headers, timeout=30)
    assert created.status_code == 201, created.text
    try:
        yield created.json()["id"]
    finally:
        requests.delete(f"{stack.influxdb2_url}/api/v2/buckets/{created.json()['id']}",
                        headers=stack.influxdb2_headers, timeout=30)


def _flux(stack, token: str, query: str) -> requests.Response:
    return requests.post(f"{stack.influxdb2_url}/api/v2/query", params={"org": stack.env["INFLUXDB2_ORG"]},
                         json={"query": query, "type": "flux"}, headers={**_h(token), "Accept": "application/csv"},
                         timeout=60)


def _write(stack, token: str, bucket: str, body: str = "") -> requests.Response:
    return requests.post(f"{stack.influxdb2_url}/api/v2/write", params={"org": stack.env["INFLUXDB2_ORG"],
                         "bucket": bucket}, data=body, headers=_h(token), timeout=30)


def _delete(stack, token: str, bucket: str) -> requests.Response:
    """Delete the points of 1971 (there are none): the permission is checked first (http/delete_handler.go)."""
    return requests.post(f"{stack.influxdb2_url}/api/v2/delete", params={"org": stack.env["INFLUXDB2_ORG"],
                         "bucket": bucket}, json={"start": "1971-01-01T00:00:00Z", "stop": "1971-01-02T00:00:00Z"},
                         headers=_h(token), timeout=30)


def _listed_buckets(stack, token: str, org_id: str) -> list[str]:
    answer = requests.get(f"{stack.influxdb2_url}/api/v2/buckets", params={"orgID": org_id, "limit": 100},
                          headers=_h(token), timeout=30)
    assert answer.status_code == 200, answer.text
    return sorted(bucket["name"] for bucket in answer.json()["buckets"])


def _refused_everywhere_else(stack, token: str, org_id: str, other_id: str) -> None:
    """What neither service token may do: create or delete a bucket, touch another bucket, see any token."""
    url = stack.influxdb2_url
    assert _answer(requests.post(f"{url}/api/v2/buckets", json={"orgID": org_id, "name": "made-by-a-service"},
                                 headers=_h(token), timeout=30)) == (
        401, {"code": "unauthorized", "message": f"write:orgs/{org_id}/buckets is unauthorized"})
    assert _answer(requests.delete(f"{url}/api/v2/buckets/{other_id}", headers=_h(token), timeout=30)) == (
        401, {"code": "unauthorized", "message": f"write:orgs/{org_id}/buckets/{other_id} is unauthorized"})
    assert _answer(_write(stack, token, OTHER, "m v=1 1")) == (
        403, {"code": "forbidden", "message": "insufficient permissions for write"})
    assert _answer(_delete(stack, token, OTHER)) == (
        403, {"code": "forbidden", "message": "insufficient permissions to delete"})
    assert _answer(_flux(stack, token, f'from(bucket: "{OTHER}") |> range(start: -1h)')) == (
        404, {"code": "not found", "message": f'failed to initialize execute state: could not find bucket "{OTHER}"'})
    listed = requests.get(f"{url}/api/v2/authorizations", headers=_h(token), timeout=30)
    assert listed.status_code == 200 and listed.json()["authorizations"] == []


def test_token_files_are_private_to_their_service(stack):
    for service in ("grafana", "ingest"):
        mode, _ = stack.service_token_file(service)
        assert mode == 0o600, (service, oct(mode))
        token = stack.service_token(service)
        assert token and token != stack.env["INFLUXDB2_ADMIN_TOKEN"]


def test_grafanas_token_reads_its_buckets_and_nothing_else(stack, org_id, other_bucket):
    token = stack.service_token("grafana")
    assert _listed_buckets(stack, token, org_id) == sorted(FLUX_BUCKETS)
    for bucket in FLUX_BUCKETS:
        read = _flux(stack, token, f'from(bucket: "{bucket}") |> range(start: -1h) |> limit(n: 1)')
        assert read.status_code == 200, read.text
    # A panel edited to write: Flux's to() is refused before it runs, in the server's words.
    for target in FLUX_BUCKETS:
        written = _flux(stack, token, f'from(bucket: "monitoring") |> range(start: -1h) |> limit(n: 1) '
                                      f'|> to(bucket: "{target}")')
        refused = "failed to initialize execute state: user not authorized to write"
        assert _answer(written) == (403, {"code": "forbidden", "message": refused})
        assert _answer(_write(stack, token, target, "m v=1 1")) == (
            403, {"code": "forbidden", "message": "insufficient permissions for write"})
        assert _answer(_delete(stack, token, target)) == (
            403, {"code": "forbidden", "message": "insufficient permissions to delete"})
    _refused_everywhere_else(stack, token, org_id, other_bucket)


def test_the_ingest_token_writes_its_buckets_and_nothing_else(stack, org_id, other_bucket):
    token = stack.service_token("ingest")
    for bucket in INGEST_BUCKETS:
        # The write permission is checked before the body is read: an empty write lands nothing and answers 204.
        assert _write(stack, token, bucket).status_code == 204
        assert _answer(_flux(stack, token, f'from(bucket: "{bucket}") |> range(start: -1h)')) == (
            404, {"code": "not found",
                  "message": f'failed to initialize execute state: could not find bucket "{bucket}"'})
    assert _listed_buckets(stack, token, org_id) == []
    _refused_everywhere_else(stack, token, org_id, other_bucket)
    # InfluxDB 2 has no permission finer than write on a bucket: it also deletes the bucket's points and the bucket
    # (http/delete_handler.go, authorizer/bucket.go DeleteBucket both check write). README, "Security", says so;
    # this notices if a server version ever separates them.
    assert _delete(stack, token, "monitoring").status_code == 204


def _authorizations(stack, org_id: str) -> dict[str, str]:
    answer = requests.get(f"{stack.influxdb2_url}/api/v2/authorizations", params={"orgID": org_id},
                          headers=stack.influxdb2_headers, timeout=30)
    return {auth["id"]: auth["description"] for auth in answer.json()["authorizations"]}


def test_a_second_make_up_creates_nothing_new(stack, org_id):
    before = _authorizations(stack, org_id), stack.service_token("grafana"), stack.service_token("ingest")
    output = stack.rerun_influxdb2_init()
    assert "tokens: grafana kept, ingest kept" in output and "buckets: telemetry exists, monitoring exists" in output
    assert (_authorizations(stack, org_id), stack.service_token("grafana"), stack.service_token("ingest")) == before
    described = [d for d in before[0].values() if d.startswith("influx-stack ")]
    assert sorted(described) == ["influx-stack grafana (read)", "influx-stack ingest (write)"]


def test_a_lost_token_file_is_replaced_and_the_old_token_revoked(stack, org_id):
    old = stack.service_token("ingest")
    stack.lose_service_token("ingest")
    output = stack.rerun_influxdb2_init()
    assert "tokens: grafana kept, ingest replaced" in output, output
    new = stack.service_token("ingest")
    assert new != old and stack.service_token_file("ingest")[0] == 0o600
    assert _answer(_write(stack, old, "telemetry")) == (401, {"code": "unauthorized", "message": "unauthorized access"})
    assert _write(stack, new, "telemetry").status_code == 204
    assert list(_authorizations(stack, org_id).values()).count("influx-stack ingest (write)") == 1
    # What `make up` does next (compose/stack.py tokens): the service holding the revoked token restarts.
    stack.stop("ingest")
    stack.start("ingest")
    deadline = time.monotonic() + 120
    while stack.ingest_health().returncode != 0 and time.monotonic() < deadline:
        time.sleep(2)
    assert stack.ingest_health().returncode == 0


def test_grafana_never_hands_a_token_to_the_browser(stack):
    """Every token is in secureJsonData: the browser's boot data (/api/frontend/settings) and the datasource API
    carry only jsonData and which secure keys are set (Grafana's pkg/api/frontendsettings.go, pkg/api/dtos)."""
    if not stack.has_grafana:
        pytest.skip("this stack runs without Grafana: set GRAFANA_BIN and GRAFANA_HOME for the native provider")
    secrets = [stack.env["INFLUXDB3_ADMIN_TOKEN"], stack.env["INFLUXDB2_ADMIN_TOKEN"], stack.service_token("grafana")]
    seen = []
    for path in ("/api/frontend/settings", "/api/datasources", "/api/datasources/uid/influxdb2-flux",
                 "/api/datasources/uid/influxdb3-sql", "/api/datasources/uid/influxdb3-influxql"):
        answer = requests.get(f"{stack.grafana_url}{path}", auth=stack.grafana_auth, timeout=30)
        assert answer.status_code == 200, (path, answer.text[:300])
        seen.append(answer.text)
    assert not [secret for secret in secrets if any(secret in text for text in seen)]
    flux = requests.get(f"{stack.grafana_url}/api/datasources/uid/influxdb2-flux", auth=stack.grafana_auth,
                        timeout=30).json()
    assert flux["secureJsonFields"] == {"token": True}
