"""influxdb3-init against a loopback server: what it sends, in which order, and how it fails.

The loopback server is InfluxDB 3 Core's HTTP API as tests/support/influxdb3.py models it from the server's
source (v3.10.1: 409 for an existing database, table or trigger; 200 when enabling an enabled trigger; 422 for
a sixth database; 200 for a package install whatever pip did; request triggers run the plugin), over the local
engine and the test's own plugin folder; it records every request, so the tests check our requests against
what the server would answer.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path

import pytest
import requests

from influxdb3_init.__main__ import main
from influxdb3_init.spec import SpecError, load_provision
from tests.engine.engine import LocalEngine
from tests.support.influxdb3 import InfluxDB3
from tests.support.openapi import validate_influxdb3_request
from tests.support.paths import REPO
from tests.support.recorder import Recorded, RecordingServer, Reply

TOKEN = "apiv3_" + "A" * 43

PROVISION = """
databases:
  - name: forecast
    retention: 400d
  - name: telemetry
tables:
  - database: telemetry
    name: sensors
    tags: [device, location]
    fields: {temperature: float64, humidity: float64}
packages_file: requirements.txt
triggers:
  - name: sensors-statistics
    database: telemetry
    plugin: statistics/table_stats.py
    spec: "table:sensors"
    arguments: {window: 1h, enabled: true, limit: 10}
  - name: forecast-daily
    database: forecast
    plugin: forecast/forecast.py
    spec: "cron:0 30 2 * * *"
    error_behavior: retry
"""

BOOTSTRAPPED = PROVISION.replace("tables:\n", """tables:
  - database: forecast
    name: views
    tags: [series]
    fields: {y: float64}
""") + """  - name: views-load
    database: forecast
    plugin: forecast/forecast.py
    spec: "request:views-load"
bootstrap:
  - request: views-load
    database: forecast
    unless_rows_in: views
"""


def write_plugins(folder: Path, provision: str = PROVISION, requirements: str = "prophet==1.5.0\nplotly==7.1.0\n"):
    (folder / "statistics").mkdir(parents=True, exist_ok=True)
    (folder / "forecast").mkdir(parents=True, exist_ok=True)
    (folder / "statistics" / "table_stats.py").write_text(
        "def process_writes(influxdb3_local, table_batches, args=None):\n    pass\n")
    (folder / "forecast" / "forecast.py").write_text(
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    pass\n\n\n"
        "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n"
        "    for day in range(120):\n"
        "        influxdb3_local.write(LineBuilder('views').tag('series', 's').float64_field('y', 1.0)"
        ".time_ns(day * 86_400 * 10**9))\n"
        "    return {'status': 'success', 'rows_written': 120}\n")
    (folder / "requirements.txt").write_text(requirements)
    (folder / "provision.yaml").write_text(provision)
    return folder / "provision.yaml"


class FakeCore:
    """InfluxDB 3 Core (tests/support/influxdb3.py) over the test's plugin folder, plus views of its state."""

    def __init__(self, plugin_dir: Path, databases: list[str] | None = None,
                 installable: dict[str, str] | None = None):
        self.server = InfluxDB3(LocalEngine(plugin_dir=plugin_dir), token=TOKEN,
                                installable=installable or {"prophet": "1.5.0", "plotly": "7.1.0"})
        for name in databases or []:
            if not name.startswith("_"):
                self.server.engine.create_database(name)

    def __call__(self, request: Recorded) -> Reply:
        return self.server(request)

    @property
    def engine(self) -> LocalEngine:
        return self.server.engine

    @property
    def databases(self) -> list[str]:
        return sorted(self.engine.databases)

    @property
    def tables(self) -> set[tuple[str, str]]:
        return {(db, table) for db in self.engine.databases if not db.startswith("_")
                for table in self.engine.database(db).tables}

    @property
    def triggers(self) -> dict[tuple[str, str], bool]:
        """(database, trigger) -> enabled."""
        return {key: not trigger.disabled for key, trigger in self.server.triggers.items()}

    @property
    def packages(self) -> list[str]:
        return [package for arguments, _ in self.server.packages.pip_runs for package in arguments]


def run_init(server: RecordingServer, provision_file: Path, *args: str, **env: str) -> int:
    environ = {"INFLUXDB3_URL": server.url, "INFLUXDB3_TOKEN": TOKEN, "PROVISION_FILE": str(provision_file), **env}
    return main(list(args), environ)


@pytest.fixture
def provision_file(tmp_path: Path) -> Path:
    return write_plugins(tmp_path / "plugins")


def test_provisions_databases_tables_packages_then_triggers(provision_file: Path, capsys):
    core = FakeCore(provision_file.parent)
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
    steps = [(r.method, r.path) for r in server.requests if r.path not in ("/api/v3/query_sql",)]
    assert steps == [
        ("GET", "/health"),
        ("GET", "/api/v3/configure/database"),
        ("POST", "/api/v3/configure/database"),
        ("POST", "/api/v3/configure/database"),
        ("POST", "/api/v3/configure/table"),
        ("POST", "/api/v3/configure/plugin_environment/install_packages"),
        ("POST", "/api/v3/configure/processing_engine_trigger"),
        ("POST", "/api/v3/configure/processing_engine_trigger/enable"),
        ("POST", "/api/v3/configure/processing_engine_trigger"),
        ("POST", "/api/v3/configure/processing_engine_trigger/enable"),
    ]
    assert core.databases == ["forecast", "telemetry"]
    assert core.tables == {("telemetry", "sensors")}
    assert core.packages == ["prophet==1.5.0", "plotly==7.1.0"]
    assert core.triggers == {("telemetry", "sensors-statistics"): True, ("forecast", "forecast-daily"): True}
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    log = capsys.readouterr().err
    assert TOKEN not in log
    assert all(line.startswith("[influxdb3-init] ") for line in log.strip().splitlines())


def test_request_bodies_are_what_the_server_expects(provision_file: Path):
    with RecordingServer(FakeCore(provision_file.parent)) as server:
        assert run_init(server, provision_file) == 0
    database = server.matching("POST", "/api/v3/configure/database")[0].json()
    assert database == {"db": "forecast", "retention_period": "400d"}
    table = server.matching("POST", "/api/v3/configure/table")[0].json()
    assert table == {"db": "telemetry", "table": "sensors", "tags": ["device", "location"],
                     "fields": [{"name": "temperature", "type": "float64"}, {"name": "humidity", "type": "float64"}]}
    stats, forecast = (r for r in server.matching("POST", "/api/v3/configure/processing_engine_trigger"))
    assert stats.json() == {
        "db": "telemetry", "plugin_filename": "statistics/table_stats.py", "trigger_name": "sensors-statistics",
        "trigger_specification": "table:sensors", "disabled": False,
        "trigger_settings": {"run_async": False, "error_behavior": "log"},
        # Plugins receive arguments as strings.
        "trigger_arguments": {"window": "1h", "enabled": "true", "limit": "10"},
    }
    assert forecast.json()["trigger_settings"] == {"run_async": False, "error_behavior": "retry"}
    assert "trigger_arguments" not in forecast.json()
    # The server reads trigger and package parameters from the query string when one is present.
    for request in server.matching("POST"):
        if request.path.endswith(("processing_engine_trigger", "install_packages", "database", "table")):
            assert request.query == {}
            assert request.header("content-type") == "application/json"
    enable = server.matching("POST", "/api/v3/configure/processing_engine_trigger/enable")[0]
    assert enable.query == {"db": ["telemetry"], "trigger_name": ["sensors-statistics"]}


def test_every_request_matches_the_published_api(tmp_path: Path):
    path = write_plugins(tmp_path, BOOTSTRAPPED)
    with RecordingServer(FakeCore(tmp_path)) as server:
        assert run_init(server, path) == 0
        assert run_init(server, path) == 0
    assert {r.path for r in server.requests} >= {"/api/v3/engine/views-load", "/api/v3/query_sql"}
    for request in server.requests:
        validate_influxdb3_request(request)


def test_a_failed_bootstrap_request_holds_back_the_ones_that_build_on_it(tmp_path: Path, capsys):
    """Without internet the series cannot be loaded: forecasting it would only answer 'too little data'."""
    load_trigger = '  - name: views-load\n    database: forecast\n    plugin: forecast/forecast.py\n' \
                   '    spec: "request:views-load"\n'
    forecast_trigger = load_trigger.replace("views-load", "views-forecast")
    provision = BOOTSTRAPPED.replace(load_trigger, load_trigger + forecast_trigger) \
        + "  - request: views-forecast\n    database: forecast\n"
    path = write_plugins(tmp_path, provision)
    core = FakeCore(tmp_path)

    def offline(request: Recorded) -> Reply:
        if request.path == "/api/v3/engine/views-load":
            return Reply(502, {"status": "error", "error": "cannot download the CSV"})
        return core(request)

    with RecordingServer(offline) as server:
        assert run_init(server, path) == 0
        assert not server.matching("POST", "/api/v3/engine/views-forecast")
    assert "not sent now, as they build on it: views-forecast" in capsys.readouterr().err


def test_a_trigger_whose_arguments_changed_in_the_file_is_named_with_the_fix(provision_file: Path, capsys):
    """system.processing_engine_trigger_arguments (python_call.rs) shows what an existing trigger runs with."""
    core = FakeCore(provision_file.parent)
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
        provision_file.write_text(PROVISION.replace("limit: 10", "limit: 20"))
        assert run_init(server, provision_file) == 0
    log = capsys.readouterr().err
    assert "trigger sensors-statistics already exists with arguments" in log
    assert "'limit': '10'" in log and "'limit': '20'" in log and "PROVISION_RECREATE_TRIGGERS=true" in log


def test_second_run_changes_nothing_and_succeeds(provision_file: Path, capsys):
    """What exists is looked up, not created again: a create answered 409 is an ERROR line in the server's log."""
    core = FakeCore(provision_file.parent)
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
        state = (list(core.databases), set(core.tables), dict(core.triggers))
        first = len(server.requests)
        assert run_init(server, provision_file) == 0
        second = [(r.method, r.path) for r in server.requests[first:] if r.method != "GET"]
    assert (core.databases, core.tables, core.triggers) == state
    creates = [path for method, path in second if path in ("/api/v3/configure/database", "/api/v3/configure/table",
                                                           "/api/v3/configure/processing_engine_trigger")]
    assert creates == [] and not any(path.endswith("/enable") for _, path in second)


def test_existing_disabled_trigger_is_enabled_again(provision_file: Path):
    core = FakeCore(provision_file.parent)
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
        # e.g. error_behavior disable kicked in, or someone disabled it
        disabled = requests.post(f"{server.url}/api/v3/configure/processing_engine_trigger/disable",
                                 params={"db": "telemetry", "trigger_name": "sensors-statistics"},
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert disabled.status_code == 200
        assert core.triggers[("telemetry", "sensors-statistics")] is False
        assert run_init(server, provision_file) == 0
    assert core.triggers[("telemetry", "sensors-statistics")] is True


def test_wrong_token_fails_with_a_clear_reason(provision_file: Path, capsys):
    def refuse(request: Recorded) -> Reply:
        return Reply(200, "OK") if request.path == "/health" else Reply(401, "the request was not authenticated")

    with RecordingServer(refuse) as server:
        assert run_init(server, provision_file) == 1
    log = capsys.readouterr().err
    assert "rejected the admin token (HTTP 401)" in log and "INFLUXDB3_ADMIN_TOKEN" in log
    assert TOKEN not in log
    assert not server.matching("POST")  # nothing was attempted after the refusal


def test_server_errors_are_retried_then_reported(provision_file: Path, capsys):
    def broken(request: Recorded) -> Reply:
        if request.path == "/api/v3/configure/database" and request.method == "POST":
            return Reply(503, "unavailable", headers={"Retry-After": "0"})
        return core(request)

    core = FakeCore(provision_file.parent)

    with RecordingServer(broken) as server:
        assert run_init(server, provision_file) == 1
    attempts = server.matching("POST", "/api/v3/configure/database")
    assert len(attempts) == 6
    log = capsys.readouterr().err
    assert "create database forecast: HTTP 503" in log and "gave up after 6 attempts" in log


def test_transient_failure_recovers(provision_file: Path):
    core = FakeCore(provision_file.parent)
    failures = {"left": 2}

    def flaky(request: Recorded) -> Reply:
        if request.path == "/api/v3/configure/table" and failures["left"]:
            failures["left"] -= 1
            return Reply(500, "catalog busy", headers={"Retry-After": "0"})
        return core(request)

    with RecordingServer(flaky) as server:
        assert run_init(server, provision_file) == 0
    assert len(server.matching("POST", "/api/v3/configure/table")) == 3
    assert core.tables == {("telemetry", "sensors")}


def test_database_limit_is_checked_before_anything_is_created(provision_file: Path, capsys):
    core = FakeCore(provision_file.parent, ["_internal", "a", "b", "c", "d"])
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 1
    assert not server.matching("POST")
    assert "allows 5 databases" in capsys.readouterr().err


@pytest.mark.parametrize(("message", "hint"), [
    ("Update to schema would exceed number of columns per table limit of 500 columns", "500 columns per table"),
    ("Update to schema would exceed number of tables limit: attempted to create table but already have 2000 "
     "table(s) (limit: 2000)", "2,000 tables"),
])
def test_a_422_names_the_limit_the_server_reported(provision_file: Path, capsys, message: str, hint: str):
    """A 422 is not always the database limit (influxdb3_catalog/src/error.rs): say which one was hit."""
    core = FakeCore(provision_file.parent)

    def limited(request: Recorded) -> Reply:
        if request.path == "/api/v3/configure/table":
            return Reply(422, {"error": message})
        return core(request)

    with RecordingServer(limited) as server:
        assert run_init(server, provision_file) == 1
    log = capsys.readouterr().err
    assert hint in log and "5 databases" not in log


CHECKED = PROVISION.replace("packages_file: requirements.txt\ntriggers:\n", """packages_file: requirements.txt
packages_check: packages-check
triggers:
  - name: packages-check
    database: forecast
    plugin: stack/packages_check.py
    spec: "request:packages-check"
""")


def checked_plugins(tmp_path: Path, requirements: str) -> Path:
    path = write_plugins(tmp_path, CHECKED, requirements=requirements)
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "packages_check.py").write_bytes(
        (REPO / "plugins" / "stack" / "packages_check.py").read_bytes())
    return path


def test_packages_the_engine_cannot_import_stop_init_with_what_to_do(tmp_path: Path, capsys):
    """pip cannot install a pin that has no release (no internet looks the same): the server still answers 200
    (environment.rs never reads pip's exit status) and pip installed nothing of the set; the check in the
    engine names every package and what to do."""
    numpy = importlib.metadata.version("numpy")
    path = checked_plugins(tmp_path, f"numpy=={numpy}\nprophet==0.0.9\nnot-on-this-machine==2.0\n")
    core = FakeCore(tmp_path, installable={"numpy": numpy, "prophet": "1.5.0"})
    with RecordingServer(core) as server:
        assert run_init(server, path) == 1
        install = server.matching("POST", "/api/v3/configure/plugin_environment/install_packages")
    assert [request.json()["packages"] for request in install] == [
        [f"numpy=={numpy}", "prophet==0.0.9", "not-on-this-machine==2.0"]]
    log = capsys.readouterr().err
    assert "3 of 3 plugin packages are not usable" in log
    assert "prophet is not installed" in log and "not-on-this-machine is not installed" in log
    assert "needs access to PyPI" in log
    created = [r.json()["trigger_name"] for r in server.matching("POST", "/api/v3/configure/processing_engine_trigger")]
    assert created == ["packages-check"], "no plugin trigger is created before its packages are proven"


def test_packages_that_import_let_init_go_on(tmp_path: Path, capsys):
    numpy = importlib.metadata.version("numpy")
    path = checked_plugins(tmp_path, f"numpy=={numpy}\n")
    core = FakeCore(tmp_path, installable={"numpy": numpy})
    with RecordingServer(core) as server:
        assert run_init(server, path) == 0
    steps = [r.path.rsplit("/", 1)[-1] for r in server.matching("POST")
             if r.path.startswith("/api/v3/engine/") or r.path.endswith("/install_packages")]
    assert steps == ["install_packages", "packages-check"]
    assert "all 1 plugin packages import at their pinned versions" in capsys.readouterr().err
    assert set(core.triggers) == {("forecast", "packages-check"), ("telemetry", "sensors-statistics"),
                                  ("forecast", "forecast-daily")}


@pytest.mark.parametrize(("change", "problem"), [
    (("packages_check: packages-check", "packages_check: forecast-daily"), "must name one enabled request trigger"),
    (("packages_check: packages-check", "packages_check: nowhere"), "must name one enabled request trigger"),
])
def test_the_packages_check_must_be_a_request_trigger_of_the_file(tmp_path: Path, change, problem):
    path = checked_plugins(tmp_path, "numpy==1.0\n")
    path.write_text(CHECKED.replace(*change))
    with pytest.raises(SpecError) as raised:
        load_provision(path)
    assert any(problem in p for p in raised.value.problems), raised.value.problems


def test_unreachable_server_is_reported(provision_file: Path, capsys):
    server = RecordingServer().start()
    url = server.url
    server.stop()
    environ = {"INFLUXDB3_URL": url, "INFLUXDB3_TOKEN": TOKEN, "PROVISION_FILE": str(provision_file),
               "INFLUXDB3_RETRY_ATTEMPTS": "2"}
    assert main([], environ) == 1
    log = capsys.readouterr().err
    assert f"health check: cannot reach {url}" in log and "gave up after 2 attempts" in log


def test_missing_token_is_a_configuration_error(provision_file: Path, capsys):
    assert main([], {"PROVISION_FILE": str(provision_file)}) == 2
    assert "INFLUXDB3_TOKEN: is required" in capsys.readouterr().err


def test_token_can_come_from_a_file(provision_file: Path, tmp_path: Path):
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    with RecordingServer(FakeCore(provision_file.parent)) as server:
        environ = {"INFLUXDB3_URL": server.url, "INFLUXDB3_TOKEN_FILE": str(secret),
                   "PROVISION_FILE": str(provision_file)}
        assert main([], environ) == 0
    assert server.requests[0].header("authorization") == f"Bearer {TOKEN}"


def test_recreate_deletes_then_creates_triggers(provision_file: Path):
    core = FakeCore(provision_file.parent)
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
        assert run_init(server, provision_file, PROVISION_RECREATE_TRIGGERS="true") == 0
    deletes = server.matching("DELETE", "/api/v3/configure/processing_engine_trigger")
    assert [d.query["trigger_name"] for d in deletes] == [["sensors-statistics"], ["forecast-daily"]]
    assert all(d.query["force"] == ["true"] for d in deletes)
    assert core.triggers == {("telemetry", "sensors-statistics"): True, ("forecast", "forecast-daily"): True}


def test_bootstrap_requests_fill_empty_tables_once(tmp_path: Path, capsys):
    path = write_plugins(tmp_path, BOOTSTRAPPED)
    core = FakeCore(tmp_path)
    with RecordingServer(core) as server:
        assert run_init(server, path) == 0
        calls = server.matching("POST", "/api/v3/engine/views-load")
        assert len(calls) == 1 and calls[0].json() == {}
        last_trigger = max(i for i, r in enumerate(server.requests) if "processing_engine_trigger" in r.path)
        assert server.requests.index(calls[0]) > last_trigger, "bootstrap runs after every trigger is enabled"
        assert run_init(server, path) == 0  # the table has rows now (in the write buffer): nothing is sent again
        core.engine.snapshot()  # now in 120 Parquet files (one per day): counted from system.parquet_files
        core.engine.query_file_limit = 100  # a COUNT(*) over the table would now be refused by the server
        assert run_init(server, path) == 0
        assert len(server.matching("POST", "/api/v3/engine/views-load")) == 1
    log = capsys.readouterr().err
    assert log.count("bootstrap views-load: skipped, forecast.views already has 120 rows") == 2


def test_a_failed_bootstrap_is_reported_but_not_fatal(tmp_path: Path, capsys):
    path = write_plugins(tmp_path, BOOTSTRAPPED)
    core = FakeCore(tmp_path)

    def offline(request: Recorded) -> Reply:
        if request.path.startswith("/api/v3/engine/"):
            return Reply(502, {"status": "error", "error": "cannot download the CSV"})
        return core(request)

    with RecordingServer(offline) as server:
        assert run_init(server, path) == 0
    assert len(server.matching("POST", "/api/v3/engine/views-load")) == 1  # plugin errors are not retried
    assert "bootstrap views-load failed (the stack works; the data comes later)" in capsys.readouterr().err


# ------------------------------------------------------------------------------- provisioning file checks
@pytest.mark.parametrize(("change", "problem"), [
    (("- name: telemetry", "- name: _telemetry"), "must be an ASCII letter or digit, then letters, digits"),
    (("- name: telemetry", "- name: tele.metry"), "must be an ASCII letter or digit, then letters, digits"),
    (("- name: telemetry", "- name: " + "t" * 512), "is 512 characters long; at most 511"),
    (('"cron:0 30 2 * * *"', '"cron:30 2 * * *"'), "has 5 fields; InfluxDB 3 needs 6"),
    (('"table:sensors"', '"table:weather"'), "'weather' must be listed under tables"),
    (("plugin: forecast/forecast.py", "plugin: forecast/missing.py"), "'forecast/missing.py' is neither"),
    (("plugin: forecast/forecast.py", "plugin: forecast"), "'forecast' is neither a .py file nor a directory"),
    (("plugin: forecast/forecast.py", "plugin: ../forecast.py"), "relative to the plugin directory"),
    (("error_behavior: retry", "error_behavior: Retry"), "error_behavior 'Retry' is not one of"),
    (("fields: {temperature: float64", "fields: {temperature: double"), "type 'double'"),
    (("database: forecast\n    plugin", "database: nowhere\n    plugin"), "database 'nowhere' is not listed"),
    (("  - request: views-load", "  - request: other"), "no enabled request trigger 'request:other'"),
    (("unless_rows_in: views", "unless_rows_in: nowhere"), "unless_rows_in 'nowhere' must be a table"),
    (('spec: "request:views-load"', 'spec: "request:views-load"\n    disabled: true'), "no enabled request"),
])
def test_invalid_provisioning_files_are_refused(tmp_path: Path, change: tuple[str, str], problem: str):
    assert change[0] in BOOTSTRAPPED
    path = write_plugins(tmp_path, BOOTSTRAPPED.replace(change[0], change[1]))
    with pytest.raises(SpecError) as raised:
        load_provision(path)
    assert any(problem in p for p in raised.value.problems), raised.value.problems


def test_all_problems_are_reported_at_once_and_nothing_is_sent(tmp_path: Path, capsys):
    broken = PROVISION.replace("- name: telemetry", "- name: tele metry").replace("0 30 2 * * *", "0 30 2 * *")
    path = write_plugins(tmp_path, broken, requirements="prophet>=1.0\n")
    with RecordingServer(FakeCore(tmp_path)) as server:
        assert run_init(server, path) == 2
    assert server.requests == []
    log = capsys.readouterr().err
    assert "'tele metry'" in log and "has 5 fields" in log and "'prophet>=1.0' is not pinned" in log


def test_multi_file_plugins_are_directories_with_an_init(tmp_path: Path):
    path = write_plugins(tmp_path, PROVISION.replace("plugin: forecast/forecast.py", "plugin: forecast/daily"))
    (tmp_path / "forecast" / "daily").mkdir()
    (tmp_path / "forecast" / "daily" / "__init__.py").write_text("")
    assert load_provision(path).triggers[1].plugin == "forecast/daily"


def test_the_plugins_provisioning_file_is_valid():
    spec = load_provision(REPO / "plugins" / "provision.yaml")
    assert {db.name for db in spec.databases} <= {"telemetry", "monitoring", "forecast", "history"}
    retention = {db.name: db.retention for db in spec.databases}
    assert retention == {"telemetry": "raw", "monitoring": "raw", "forecast": None, "history": None}
    # Every rollup of a live database is copied where its retention does not reach (grafana/history.py reads
    # `history` for long ranges), with the raw table there too, so that the same panel SQL runs on both.
    for trigger in spec.triggers:
        if trigger.plugin == "history/rollups" and retention[trigger.database] == "raw":
            assert trigger.arguments.get("copy_to") == "history", trigger.name
            for name in trigger.arguments["tables"].split():
                assert {("history", name), ("history", f"{name}_1d")} <= {(t.database, t.name) for t in spec.tables}
    assert all(package.split("==")[0] for package in spec.packages)
    # Every WAL trigger's table is provisioned in the trigger's own database, before the trigger.
    for trigger in spec.triggers:
        if trigger.spec.startswith("table:"):
            assert (trigger.database, trigger.spec[6:]) in {(t.database, t.name) for t in spec.tables}


def test_too_many_databases_in_the_file(tmp_path: Path):
    many = "databases:\n" + "".join(f"  - name: db{i}\n" for i in range(6))
    path = write_plugins(tmp_path, many)
    with pytest.raises(SpecError, match="InfluxDB 3 Core allows 5"):
        load_provision(path)


def test_check_mode_validates_without_a_server(provision_file: Path, capsys):
    assert main(["--check", "--file", str(provision_file)], {}) == 0
    assert "2 databases, 1 tables, 2 packages, 2 triggers, 0 bootstrap requests" in capsys.readouterr().err


def test_trigger_arguments_survive_as_strings(provision_file: Path):
    spec = load_provision(provision_file)
    body = spec.triggers[0].request_body()
    assert json.loads(json.dumps(body))["trigger_arguments"] == {"window": "1h", "enabled": "true", "limit": "10"}


# ---- community plugins (gh:) ------------------------------------------------------------------------------------
COMMUNITY = PROVISION + """  - name: host-metrics
    database: telemetry
    plugin: gh:influxdata/system_metrics/system_metrics.py
    spec: "every:30s"
    arguments: {hostname: stack}
    packages: [psutil==7.2.2, influxdata-plugin-utils==0.3.1]
"""
COMMUNITY_CODE = "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    pass\n"


class PluginRepo:
    """A plugin repository over HTTP, as raw.githubusercontent.com serves one: the file, or 404."""

    def __init__(self, files: dict[str, str]):
        self.files = files

    def __call__(self, request: Recorded) -> Reply:
        path = request.path.removeprefix("/pinned/")
        if request.method == "GET" and path in self.files:
            return Reply(200, self.files[path].encode(), {"Content-Type": "text/plain; charset=utf-8"})
        return Reply(404, b"404: Not Found")


def community_core(folder: Path, repo_url: str) -> FakeCore:
    core = FakeCore(folder, installable={"prophet": "1.5.0", "plotly": "7.1.0", "psutil": "7.2.2",
                                         "influxdata-plugin-utils": "0.3.1"})
    core.server.plugin_repo = repo_url
    return core


def test_a_community_plugin_is_created_from_the_plugin_repository_with_its_packages(tmp_path: Path, capsys):
    path = write_plugins(tmp_path, COMMUNITY)
    with RecordingServer(PluginRepo({"influxdata/system_metrics/system_metrics.py": COMMUNITY_CODE})) as repo:
        pinned = f"{repo.url}/pinned/"
        core = community_core(tmp_path, pinned)
        with RecordingServer(core) as server:
            assert run_init(server, path, INFLUXDB3_PLUGIN_REPO=pinned) == 0
    assert core.triggers[("telemetry", "host-metrics")] is True
    created = [r.json() for r in server.matching("POST", "/api/v3/configure/processing_engine_trigger")]
    assert created[-1] == {
        "db": "telemetry", "plugin_filename": "gh:influxdata/system_metrics/system_metrics.py",
        "trigger_name": "host-metrics", "trigger_specification": "every:30s", "disabled": False,
        "trigger_settings": {"run_async": False, "error_behavior": "log"}, "trigger_arguments": {"hostname": "stack"}}
    # The server downloaded it (the URL joined as lib.rs joins it), and the plugin's packages were installed and
    # checked with the others.
    assert core.server.downloads == [f"{pinned}influxdata/system_metrics/system_metrics.py"]
    assert core.packages == ["prophet==1.5.0", "plotly==7.1.0", "psutil==7.2.2", "influxdata-plugin-utils==0.3.1"]
    assert f"from {pinned}influxdata/system_metrics/system_metrics.py" in capsys.readouterr().err


@pytest.mark.parametrize("reachable", [True, False], ids=["404", "no connection"])
def test_a_community_plugin_the_server_cannot_download_is_one_warning_and_init_goes_on(tmp_path: Path, capsys,
                                                                                        reachable: bool):
    path = write_plugins(tmp_path, COMMUNITY)
    with RecordingServer(PluginRepo({})) as repo:
        url = repo.url if reachable else f"http://127.0.0.1:{_closed_port()}"
        core = community_core(tmp_path, url)
        with RecordingServer(core) as server:
            assert run_init(server, path, INFLUXDB3_PLUGIN_REPO=url) == 0
            assert run_init(server, path, INFLUXDB3_PLUGIN_REPO=url) == 0  # tried again on the next start
    assert ("telemetry", "host-metrics") not in core.triggers
    assert core.triggers[("telemetry", "sensors-statistics")] is True
    tries = [r for r in server.matching("POST", "/api/v3/configure/processing_engine_trigger")
             if r.json()["trigger_name"] == "host-metrics"]
    assert len(tries) == 2  # one per run: a download failure is not retried with backoff
    warnings = [line for line in capsys.readouterr().err.splitlines() if "host-metrics not created" in line]
    assert len(warnings) == 2
    expected = "404 Not Found" if reachable else "error getting plugin from repository"
    assert f"{url}/influxdata/system_metrics/system_metrics.py" in warnings[0] and expected in warnings[0]
    assert "INFLUXDB3_PLUGIN_REPO" in warnings[0] and "provisioning finished" not in warnings[0]


@pytest.mark.parametrize("plugin, problem", [
    ("gh:influxdata/system_metrics/", "must be gh:<path to a .py file"),
    ("gh:../system_metrics.py", "must be gh:<path to a .py file"),
    ("gh:/etc/passwd.py", "must be gh:<path to a .py file"),
])
def test_a_community_plugin_reference_is_checked_for_form(tmp_path: Path, plugin: str, problem: str):
    path = write_plugins(tmp_path, COMMUNITY.replace("gh:influxdata/system_metrics/system_metrics.py", plugin))
    with pytest.raises(SpecError) as raised:
        load_provision(path)
    assert any(problem in p for p in raised.value.problems), raised.value.problems


@pytest.mark.parametrize("packages, problem", [
    ("[psutil>=7]", "'psutil>=7' are not pinned"),
    ("[prophet==1.4.0]", "prophet is pinned twice: prophet==1.5.0 and prophet==1.4.0"),
    ("psutil==7.2.2", "packages must be a list"),
])
def test_a_community_plugins_packages_are_pinned_once(tmp_path: Path, packages: str, problem: str):
    path = write_plugins(tmp_path, COMMUNITY.replace("[psutil==7.2.2, influxdata-plugin-utils==0.3.1]", packages))
    with pytest.raises(SpecError) as raised:
        load_provision(path)
    assert any(problem in p for p in raised.value.problems), raised.value.problems


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


LIVE = """
databases:
  - name: telemetry
    retention: raw
  - name: history
  - name: kept
    retention: 400d
"""
DAY_NS = 86_400 * 10**9


def test_a_new_live_database_gets_the_raw_retention(tmp_path: Path):
    provision_file = write_plugins(tmp_path / "plugins", LIVE)
    with RecordingServer(FakeCore(provision_file.parent)) as server:
        assert run_init(server, provision_file, RAW_RETENTION="120d") == 0
    assert [r.json() for r in server.matching("POST", "/api/v3/configure/database")] == [
        {"db": "telemetry", "retention_period": "120d"}, {"db": "history"}, {"db": "kept", "retention_period": "400d"}]
    assert not server.matching("PUT", "/api/v3/configure/database")


def test_an_existing_live_database_gets_it_when_nothing_is_older_than_its_cutoff(tmp_path: Path, capsys):
    provision_file = write_plugins(tmp_path / "plugins", LIVE)
    core = FakeCore(provision_file.parent, ["telemetry", "history", "kept"])
    core.engine.write("telemetry", f"sensors,device=a v=1 {time.time_ns() - 10 * DAY_NS}")
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
        assert run_init(server, provision_file) == 0  # the second start finds it set
    assert [r.json() for r in server.matching("PUT", "/api/v3/configure/database")] == [
        {"db": "telemetry", "retention_period": "90d"}, {"db": "kept", "retention_period": "400d"}]
    assert core.engine.live_database("telemetry").retention_ns == 90 * DAY_NS
    assert "database telemetry: retention 90d (was none)" in capsys.readouterr().err


def test_a_live_database_holding_older_rows_keeps_them_until_forced(tmp_path: Path, capsys):
    """The cutoff hides older rows from every query at once: history loaded into a live database (a 2018 bird
    study) and raw rows whose rollups are not in `history` yet stay until the user says so."""
    provision_file = write_plugins(tmp_path / "plugins", LIVE)
    core = FakeCore(provision_file.parent, ["telemetry", "history", "kept"])
    core.engine.write("telemetry", "bird_fixes,individual=a lat=53.0 1530000000000000000")
    core.engine.write("telemetry", f"sensors,device=a v=1 {time.time_ns()}")
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
        assert not [r for r in server.matching("PUT", "/api/v3/configure/database")
                    if r.json()["db"] == "telemetry"]
        warning = capsys.readouterr().err
        assert "database telemetry keeps its retention (none): bird_fixes hold rows from before" in warning
        assert "RAW_RETENTION_FORCE=true" in warning and "sensors" not in warning.split("hold rows")[0]
        assert run_init(server, provision_file, RAW_RETENTION_FORCE="true") == 0
    assert core.engine.live_database("telemetry").retention_ns == 90 * DAY_NS


def test_a_longer_retention_or_none_is_set_at_once(tmp_path: Path):
    provision_file = write_plugins(tmp_path / "plugins", LIVE)
    core = FakeCore(provision_file.parent, ["history", "kept"])
    core.engine.create_database("telemetry", retention_period="30d")
    core.engine.write("telemetry", "bird_fixes,individual=a lat=53.0 1530000000000000000")
    with RecordingServer(core) as server:
        assert run_init(server, provision_file, RAW_RETENTION="60d") == 0
        assert core.engine.live_database("telemetry").retention_ns == 60 * DAY_NS
        assert run_init(server, provision_file, RAW_RETENTION="none") == 0
    assert core.engine.live_database("telemetry").retention_ns is None
    assert [r.json() for r in server.matching("PUT", "/api/v3/configure/database") if r.json()["db"] == "telemetry"] \
        == [{"db": "telemetry", "retention_period": "60d"}, {"db": "telemetry"}]


@pytest.mark.parametrize("value, problem", [
    ("7d", "RAW_RETENTION=7d is shorter than 32d"), ("soon", "RAW_RETENTION: 'soon' is not a duration")])
def test_a_raw_retention_the_dashboards_cannot_live_with_is_refused_up_front(tmp_path: Path, capsys, value, problem):
    provision_file = write_plugins(tmp_path / "plugins", LIVE)
    with RecordingServer(FakeCore(provision_file.parent)) as server:
        assert run_init(server, provision_file, RAW_RETENTION=value) == 2
    assert not server.requests
    assert problem in capsys.readouterr().err


def test_copy_to_needs_a_listed_database_without_retention(tmp_path: Path):
    text = LIVE + """tables:
  - database: telemetry
    name: sensors
    tags: [device]
    fields: {v: float64}
triggers:
  - name: rollups
    database: telemetry
    plugin: history/rollups
    spec: "every:1m"
    arguments: {tables: sensors, levels: 1h 1d, copy_to: kept}
"""
    path = write_plugins(tmp_path / "plugins", text)
    (path.parent / "history" / "rollups").mkdir(parents=True)
    (path.parent / "history" / "rollups" / "__init__.py").write_text(
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    pass\n")
    with pytest.raises(SpecError, match="copy_to 'kept' has a retention"):
        load_provision(path)
    spec = load_provision(write_plugins(tmp_path / "plugins", text.replace("copy_to: kept", "copy_to: history")))
    assert {(t.database, t.name) for t in spec.tables} == {
        ("telemetry", "sensors"), ("telemetry", "sensors_1h"), ("telemetry", "sensors_1d"),
        ("history", "sensors"), ("history", "sensors_1h"), ("history", "sensors_1d")}
