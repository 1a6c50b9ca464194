"""The declarative buckets file, the schema every consumer derives from, and the configuration."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
import yaml

from common.config import ConfigError
from ingest.buckets import load_buckets
from ingest.config import PACKAGE, IngestConfig, parse_size
from ingest.lineprotocol import check_name
from ingest.outputs import Outputs
from ingest.schema import DATABASES, MEASUREMENTS, SENSORS
from ingest.sinks import FatalSinkError
from tests.support.openapi import validate_influxdb3_request
from tests.support.paths import REPO
from tests.support.recorder import Recorded


def test_the_shipped_buckets_file():
    raw = timedelta(days=90)
    specs = {spec.name: spec for spec in load_buckets(PACKAGE / "buckets.yaml", raw)}
    assert set(specs) == set(DATABASES)
    # The live buckets keep raw rows RAW_RETENTION; history loaded from the past is never deleted.
    assert {name: spec.retention for name, spec in specs.items()} == {"telemetry": raw, "monitoring": raw,
                                                                      "history": None}


def test_names_follow_influxdb3s_own_rule_underscores_and_hyphens_included(tmp_path):
    path = tmp_path / "buckets.yaml"
    path.write_text("buckets: [{name: my_bucket-2, retention: none}, {name: " + "b" * 511 + "}]")
    assert [spec.name for spec in load_buckets(path, None)] == ["my_bucket-2", "b" * 511]


@pytest.mark.parametrize("content,problem", [
    ("buckets: [{name: _monitoring}]", "must be an ASCII letter or digit"),
    ("buckets: [{name: my.bucket}]", "must be an ASCII letter or digit"),
    ("buckets: [{name: a}, {name: a}]", "listed twice"),
    ("buckets: [{name: a, retention: soon}]", "retention"),
    ("buckets: [{name: a, shards: 2}]", "unknown keys"),
    ("buckets: []", "non-empty"),
    ("buckets: [", "not valid YAML"),
])
def test_a_bad_buckets_file_is_named_with_the_problem(tmp_path, content, problem):
    path = tmp_path / "buckets.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as raised:
        load_buckets(path, None)
    assert str(path) in str(raised.value)


def test_buckets_and_databases_are_created_once_then_left_alone(fake_influx, ingest_env):
    fake, server = fake_influx
    config = IngestConfig.from_env()
    Outputs(config, "t").ensure_buckets()
    Outputs(config, "t").ensure_buckets()
    creates = server.matching("POST", "/api/v2/buckets")
    assert [request.json()["name"] for request in creates] == ["monitoring", "history"]  # telemetry existed
    # monitoring keeps raw rows RAW_RETENTION (default 90d), history everything
    assert [request.json()["retentionRules"] for request in creates] == [
        [{"type": "expire", "everySeconds": 90 * 86_400}], []]
    assert creates[0].json()["orgID"] == "0123456789abcdef"
    v3 = server.matching("POST", "/api/v3/configure/database")
    assert [request.json() for request in v3] == 2 * [{"db": "telemetry", "retention_period": "90d"},
                                                      {"db": "monitoring", "retention_period": "90d"},
                                                      {"db": "history"}]
    for request in v3:
        validate_influxdb3_request(request)
    assert fake.buckets == fake.databases == {"telemetry", "monitoring", "history"}


def test_a_wrong_token_is_found_before_any_data_is_read(fake_influx, ingest_env, monkeypatch):
    monkeypatch.setenv("INFLUXDB3_TOKEN", "nope")
    with pytest.raises(FatalSinkError, match="INFLUXDB3_TOKEN"):
        Outputs(IngestConfig.from_env(), "t").ensure_buckets()


def test_schema_names_are_valid_everywhere_and_databases_follow_influxdb3_rules():
    for measurement in MEASUREMENTS:
        check_name("measurement", measurement.name)
        for name in measurement.tags:
            check_name("tag key", name)
        for name in measurement.field_names:
            check_name("field key", name)
        assert not set(measurement.tags) & set(measurement.field_names)
        assert measurement.database in DATABASES
        body = json.dumps(measurement.influxdb3_table()).encode()
        validate_influxdb3_request(Recorded("POST", "/api/v3/configure/table", {},
                                            {"content-type": "application/json", "authorization": "Bearer x"},
                                            body, body))


def test_the_plugins_provisioning_creates_the_sensors_table_this_schema_declares():
    path = REPO / "plugins" / "provision.yaml"
    if not path.is_file():
        pytest.skip("plugins/provision.yaml is not in this checkout")
    tables = yaml.safe_load(path.read_text())["tables"]
    [sensors] = [table for table in tables if table["database"] == "telemetry" and table["name"] == SENSORS.name]
    assert list(sensors["tags"]) == list(SENSORS.tags)
    assert sensors["fields"] == SENSORS.field_types


def test_configuration_defaults_secret_files_and_all_problems_at_once(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    config = IngestConfig.from_env({"INFLUXDB2_TOKEN": "t2", "INFLUXDB3_TOKEN_FILE": str(secret)})
    assert config.influxdb3 is not None and config.influxdb3.token == "from-a-file"
    assert config.bucket == "telemetry" and config.monitoring_bucket == "monitoring"
    assert config.weather_interval == 1800 and config.sensors_interval == 10 and config.batch_bytes == 4 << 20
    assert "from-a-file" not in repr(config)
    with pytest.raises(ConfigError) as raised:
        IngestConfig.from_env({"INFLUXDB2_TOKEN": "x", "SENSORS_DEVICES": "0", "INGEST_RUN_JOBS": "birds,cats",
                               "WEATHER_INTERVAL": "soon"})
    problems = "\n".join(raised.value.problems)
    for name in ("INFLUXDB3_TOKEN", "SENSORS_DEVICES", "INGEST_RUN_JOBS: unknown cats", "WEATHER_INTERVAL"):
        assert name in problems


def test_a_batch_larger_than_influxdb3_accepts_in_one_request_is_refused_by_name():
    base = {"INFLUXDB2_TOKEN": "t2", "INFLUXDB3_TOKEN": "t3"}
    assert IngestConfig.from_env({**base, "INGEST_BATCH_BYTES": "10MiB"}).batch_bytes == 10 << 20
    with pytest.raises(ConfigError) as raised:
        IngestConfig.from_env({**base, "INGEST_BATCH_BYTES": "16MiB"})
    assert any(problem.startswith("INGEST_BATCH_BYTES: 16MiB") and "10MiB" in problem
               for problem in raised.value.problems)


def test_sizes():
    assert parse_size("4MiB") == 4 << 20 and parse_size("512k") == 512_000 and parse_size("1GiB") == 1 << 30
    assert parse_size("100") == 100
    with pytest.raises(ValueError):
        parse_size("4 parsecs")


def test_the_influxdb3_url_without_a_port_gets_its_default(fake_influx):
    from ingest.sinks.influxdb3 import with_port

    assert with_port("http://influxdb3") == "http://influxdb3:80"
    assert with_port("https://db.example.com/") == "https://db.example.com:443"
    assert with_port("http://influxdb3:8181") == "http://influxdb3:8181"
    assert requests is not None
