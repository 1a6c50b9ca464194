"""influxdb2-init against the InfluxDB 2 stand-in (tests/support/influxdb2.py, which answers authorizations and
permission checks as influxd's source does; tests/integration/test_standins.py compares it with the real server).

What it must do on every `make up`: the ingest's buckets exist; Grafana's token reads exactly its buckets and
the ingest's writes exactly its own; each is a 0600 file; a second run changes nothing; a lost, unknown or
mis-scoped token is replaced and the old authorization deleted; a wrong operator token stops it with a message
that names the variable and never the token.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from influxdb2_init.__main__ import main
from tests.support.influxdb2 import InfluxDB2
from tests.support.paths import REPO
from tests.support.recorder import RecordingServer

OPERATOR = "operator-token-for-init"


@pytest.fixture
def influxdb2() -> Iterator[tuple[InfluxDB2, str]]:
    fake = InfluxDB2(token=OPERATOR)
    fake.add_bucket("telemetry")  # the first bucket, made by the image's setup
    with RecordingServer(fake) as server:
        yield fake, server.url


@pytest.fixture
def environ(influxdb2, tmp_path: Path) -> dict[str, str]:
    _, url = influxdb2
    return {"INFLUXDB2_URL": url, "INFLUXDB2_ORG": "stack", "INFLUXDB2_TOKEN": OPERATOR,
            "INGEST_BUCKETS_FILE": str(REPO / "ingest" / "buckets.yaml"),
            "GRAFANA_TOKEN_FILE": str(tmp_path / "grafana" / "token"), "GRAFANA_TOKEN_OWNER": "-",
            "INGEST_TOKEN_FILE": str(tmp_path / "ingest" / "token"), "INGEST_TOKEN_OWNER": "-",
            "INFLUXDB2_RETRY_ATTEMPTS": "1"}


def _run(environ: dict[str, str], capsys) -> tuple[int, str]:
    code = main([], environ)
    return code, capsys.readouterr().err


def _token(environ: dict[str, str], service: str) -> str:
    return Path(environ[f"{service.upper()}_TOKEN_FILE"]).read_text().strip()


def _described(fake: InfluxDB2) -> list[str]:
    return sorted(auth["description"] for auth in fake.authorizations.values())


def test_first_run_creates_the_buckets_and_one_scoped_token_per_service(influxdb2, environ, capsys):
    fake, url = influxdb2
    code, err = _run(environ, capsys)
    assert code == 0, err
    assert "buckets: telemetry exists, monitoring created, history created" in err
    assert "tokens: grafana created, ingest created" in err
    assert set(fake.buckets) == {"telemetry", "monitoring", "history"}
    # the live bucket keeps raw rows RAW_RETENTION (default 90d); history loaded from the past is kept
    assert fake.buckets["monitoring"]["retentionRules"] == [{"type": "expire", "everySeconds": 90 * 86_400}]
    assert fake.buckets["history"]["retentionRules"] == []
    assert _described(fake) == ["influx-stack grafana (read)", "influx-stack ingest (write)"]
    ids = {name: bucket["id"] for name, bucket in fake.buckets.items()}
    scopes = {auth["description"]: sorted((p["action"], p["resource"]["id"]) for p in auth["permissions"])
              for auth in fake.authorizations.values()}
    assert scopes == {"influx-stack grafana (read)": sorted(("read", ids[b]) for b in ("telemetry", "monitoring")),
                      "influx-stack ingest (write)": sorted(("write", ids[b]) for b in ("telemetry", "monitoring",
                                                                                       "history"))}
    for service in ("grafana", "ingest"):
        path = Path(environ[f"{service.upper()}_TOKEN_FILE"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        token = _token(environ, service)
        assert fake.authorizations[token]["description"].startswith(f"influx-stack {service} ")
        assert token not in err
    assert OPERATOR not in err
    # Through the stand-in's permission checks: Grafana reads, never writes; the ingest writes, never reads.
    grafana, ingest = ({"Authorization": f"Token {_token(environ, s)}"} for s in ("grafana", "ingest"))
    query = {"query": 'from(bucket: "monitoring") |> range(start: -1h) |> to(bucket: "monitoring")', "type": "flux"}
    refused = requests.post(f"{url}/api/v2/query", params={"org": "stack"}, json=query, headers=grafana, timeout=10)
    assert refused.status_code == 403 and refused.json()["message"].endswith("user not authorized to write")
    assert requests.post(f"{url}/api/v2/write", params={"org": "stack", "bucket": "monitoring"}, data="m v=1 1",
                         headers=ingest, timeout=10).status_code == 204
    assert requests.post(f"{url}/api/v2/write", params={"org": "stack", "bucket": "monitoring"}, data="m v=1 1",
                         headers=grafana, timeout=10).status_code == 403


def test_a_second_run_keeps_everything(influxdb2, environ, capsys):
    fake, _ = influxdb2
    assert _run(environ, capsys)[0] == 0
    before = dict(fake.authorizations), _token(environ, "grafana"), _token(environ, "ingest")
    code, err = _run(environ, capsys)
    assert code == 0 and "buckets: telemetry exists, monitoring exists" in err
    assert "tokens: grafana kept, ingest kept" in err
    assert (dict(fake.authorizations), _token(environ, "grafana"), _token(environ, "ingest")) == before


def test_a_lost_file_gets_a_new_token_and_the_old_one_is_revoked(influxdb2, environ, capsys):
    fake, _ = influxdb2
    assert _run(environ, capsys)[0] == 0
    old = _token(environ, "ingest")
    Path(environ["INGEST_TOKEN_FILE"]).unlink()
    code, err = _run(environ, capsys)
    assert code == 0 and "tokens: grafana kept, ingest replaced" in err
    assert "missing or empty" in err and "1 old authorization(s) with its description deleted" in err
    new = _token(environ, "ingest")
    assert new != old and old not in fake.authorizations and new in fake.authorizations
    assert _described(fake) == ["influx-stack grafana (read)", "influx-stack ingest (write)"]


def test_a_token_the_server_no_longer_knows_is_replaced(influxdb2, environ, capsys):
    """As after a full restore of a set that holds other tokens (README, "Security")."""
    fake, _ = influxdb2
    assert _run(environ, capsys)[0] == 0
    grafana = _token(environ, "grafana")
    fake.authorizations[grafana]["token"] = "restored"
    fake.authorizations["restored"] = fake.authorizations.pop(grafana)  # the set's token under the same description
    code, err = _run(environ, capsys)
    assert code == 0 and "tokens: grafana replaced, ingest kept" in err
    assert "the server does not know its token" in err and "restored" not in fake.authorizations
    assert _described(fake) == ["influx-stack grafana (read)", "influx-stack ingest (write)"]


def test_a_token_with_other_access_is_replaced(influxdb2, environ, capsys):
    """Grafana's dashboards read one more bucket: its token must read it too; one that reads fewer is replaced."""
    fake, _ = influxdb2
    assert _run(environ, capsys)[0] == 0
    fake.add_bucket("archive")
    code, err = _run({**environ, "GRAFANA_INFLUXDB2_BUCKETS": "telemetry,monitoring,archive"}, capsys)
    assert code == 0 and "tokens: grafana replaced, ingest kept" in err
    assert "it reads the buckets ['monitoring', 'telemetry'], not ['archive', 'monitoring', 'telemetry']" in err
    grafana = fake.authorizations[_token(environ, "grafana")]
    assert {p["resource"]["id"] for p in grafana["permissions"]} == {fake.buckets[b]["id"] for b in
                                                                    ("telemetry", "monitoring", "archive")}


def test_a_wrong_operator_token_stops_with_what_to_do(influxdb2, environ, capsys):
    code, err = _run({**environ, "INFLUXDB2_TOKEN": "not-the-operator"}, capsys)
    assert code == 1 and "INFLUXDB2_TOKEN" in err and "INFLUXDB2_ADMIN_TOKEN" in err and "401" in err
    assert "not-the-operator" not in err and "Traceback" not in err


@pytest.mark.parametrize("change,message", [
    ({"GRAFANA_TOKEN_OWNER": "grafana"}, "GRAFANA_TOKEN_OWNER: expected UID:GID"),
    ({"GRAFANA_INFLUXDB2_BUCKETS": "ok,_bad"}, "GRAFANA_INFLUXDB2_BUCKETS: bucket '_bad'"),
    ({"INGEST_TOKEN_FILE": "SAME", "GRAFANA_TOKEN_FILE": "SAME"}, "each service needs its own file"),
    ({"INFLUXDB2_TOKEN": ""}, "INFLUXDB2_TOKEN: is required"),
])
def test_bad_configuration_names_the_variable(environ, capsys, change, message):
    code, err = _run({**environ, **change}, capsys)
    assert code == 2 and message in err


def test_a_bucket_grafana_reads_must_exist(influxdb2, environ, capsys):
    code, err = _run({**environ, "GRAFANA_INFLUXDB2_BUCKETS": "telemetry,nowhere"}, capsys)
    assert code == 1 and "GRAFANA_INFLUXDB2_BUCKETS names bucket 'nowhere'" in err


def test_token_files_are_written_whole_and_private(tmp_path: Path):
    from influxdb2_init.secretfile import read_secret, write_secret

    target = tmp_path / "volume" / "token"
    assert read_secret(target) is None
    write_secret(target, "first", None)
    write_secret(target, "second", None)
    assert read_secret(target) == "second" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["token"]  # no temporary file left
    target.write_text("\n")
    assert read_secret(target) is None  # an emptied file is a lost token
