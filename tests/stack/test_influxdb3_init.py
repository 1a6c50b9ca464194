"""influxdb3-init against a loopback server: what it sends, in which order, and how it fails.

The loopback server answers the way InfluxDB 3 Core's HTTP layer does (409 for an existing database,
table or trigger; 200 when enabling an enabled trigger; 422 for a sixth database) and records every
request, so the tests check our requests, not a pretend server's behaviour.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from influxdb3_init.__main__ import main
from influxdb3_init.spec import SpecError, load_provision
from tests.engine.engine import LocalEngine
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
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    pass\n")
    (folder / "requirements.txt").write_text(requirements)
    (folder / "provision.yaml").write_text(provision)
    return folder / "provision.yaml"


class FakeCore:
    """Answers like InfluxDB 3 Core's HTTP layer for the admin endpoints provisioning uses."""

    def __init__(self, databases: list[str] | None = None):
        self.databases = list(databases or ["_internal"])
        self.tables: set[tuple[str, str]] = set()
        self.triggers: dict[tuple[str, str], bool] = {}  # -> enabled
        self.packages: list[str] = []
        self.rows: dict[str, int] = {}

    def __call__(self, request: Recorded) -> Reply:
        path, method = request.path, request.method
        if path == "/health":
            return Reply(200, "OK")
        if path == "/api/v3/configure/database" and method == "GET":
            return Reply(200, [{"iox::database": name} for name in self.databases])
        body = request.json() if request.body else {}
        if path == "/api/v3/configure/database" and method == "POST":
            if body["db"] in self.databases:
                return Reply(409, "attempted to create a resource that already exists")
            if len([d for d in self.databases if not d.startswith("_")]) >= 5:
                return Reply(422, {"error": "Adding a new database would exceed limit of 5 databases"})
            self.databases.append(body["db"])
            return Reply(200)
        if path == "/api/v3/configure/table":
            key = (body["db"], body["table"])
            if key in self.tables:
                return Reply(409, "attempted to create a resource that already exists")
            self.tables.add(key)
            return Reply(200)
        if path.endswith("/install_packages"):
            self.packages.extend(body["packages"])
            return Reply(200)
        if path == "/api/v3/configure/processing_engine_trigger" and method == "POST":
            key = (body["db"], body["trigger_name"])
            if key in self.triggers:
                return Reply(409, "attempted to create a resource that already exists")
            self.triggers[key] = not body["disabled"]
            return Reply(200)
        if path.endswith("/processing_engine_trigger/enable"):
            self.triggers[(request.param("db"), request.param("trigger_name"))] = True
            return Reply(200)
        if path == "/api/v3/query_sql" and "information_schema.tables" in body["q"]:
            name = body["q"].split("'")[1]
            return Reply(200, [{"table_name": name}] if (body["db"], name) in self.tables else [])
        if path == "/api/v3/query_sql" and "system.parquet_files" in body["q"]:
            return Reply(200, [{"files": 0, "n": None}])
        if path == "/api/v3/query_sql" and body["q"].startswith("SELECT COUNT(*)"):
            return Reply(200, [{"n": self.rows.get(body["q"].split('"')[1], 0)}])
        if path == "/api/v3/query_sql":
            rows = [{"trigger_name": name, "plugin_filename": "x.py", "disabled": not on, "error_behavior": "log"}
                    for (db, name), on in self.triggers.items() if db == body["db"]]
            return Reply(200, rows)
        if path.startswith("/api/v3/engine/"):
            self.rows["views"] = 120
            return Reply(200, {"status": "success", "rows_written": 120})
        return Reply(404, "not found")


def run_init(server: RecordingServer, provision_file: Path, *args: str, **env: str) -> int:
    environ = {"INFLUXDB3_URL": server.url, "INFLUXDB3_TOKEN": TOKEN, "PROVISION_FILE": str(provision_file), **env}
    return main(list(args), environ)


@pytest.fixture
def provision_file(tmp_path: Path) -> Path:
    return write_plugins(tmp_path / "plugins")


def test_provisions_databases_tables_packages_then_triggers(provision_file: Path, capsys):
    core = FakeCore()
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
    assert core.databases == ["_internal", "forecast", "telemetry"]
    assert core.tables == {("telemetry", "sensors")}
    assert core.packages == ["prophet==1.5.0", "plotly==7.1.0"]
    assert core.triggers == {("telemetry", "sensors-statistics"): True, ("forecast", "forecast-daily"): True}
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    log = capsys.readouterr().err
    assert TOKEN not in log
    assert all(line.startswith("[influxdb3-init] ") for line in log.strip().splitlines())


def test_request_bodies_are_what_the_server_expects(provision_file: Path):
    with RecordingServer(FakeCore()) as server:
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
    with RecordingServer(FakeCore()) as server:
        assert run_init(server, path) == 0
        assert run_init(server, path) == 0
    assert {r.path for r in server.requests} >= {"/api/v3/engine/views-load", "/api/v3/query_sql"}
    for request in server.requests:
        validate_influxdb3_request(request)


def test_second_run_changes_nothing_and_succeeds(provision_file: Path, capsys):
    core = FakeCore()
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
        state = (list(core.databases), set(core.tables), dict(core.triggers))
        assert run_init(server, provision_file) == 0
    assert (core.databases, core.tables, core.triggers) == state
    log = capsys.readouterr().err
    assert "database forecast: exists" in log and "table telemetry.sensors: exists" in log
    assert "trigger sensors-statistics (table:sensors on telemetry): exists" in log


def test_existing_disabled_trigger_is_enabled_again(provision_file: Path):
    core = FakeCore()
    with RecordingServer(core) as server:
        assert run_init(server, provision_file) == 0
        core.triggers[("telemetry", "sensors-statistics")] = False  # e.g. error_behavior disable kicked in
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
        return FakeCore()(request)

    with RecordingServer(broken) as server:
        assert run_init(server, provision_file) == 1
    attempts = server.matching("POST", "/api/v3/configure/database")
    assert len(attempts) == 6
    log = capsys.readouterr().err
    assert "create database forecast: HTTP 503" in log and "gave up after 6 attempts" in log


def test_transient_failure_recovers(provision_file: Path):
    core = FakeCore()
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
    core = FakeCore(["_internal", "a", "b", "c", "d"])
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
    core = FakeCore()

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


def engine_core() -> tuple[FakeCore, Callable[[Recorded], Reply]]:
    """FakeCore whose packages-check endpoint runs the real plugin in the local engine (this interpreter): the
    server answered 200 to the install whatever pip did, and only this import tells."""
    core, engine = FakeCore(), LocalEngine()

    def respond(request: Recorded) -> Reply:
        if request.path == "/api/v3/engine/packages-check":
            run = engine.run_request("stack/packages_check.py", "forecast", body=request.body)
            return Reply(run.response.status, run.response.body, dict(run.response.headers))
        return core(request)

    return core, respond


def checked_plugins(tmp_path: Path, requirements: str) -> Path:
    path = write_plugins(tmp_path, CHECKED, requirements=requirements)
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "packages_check.py").write_bytes(
        (REPO / "plugins" / "stack" / "packages_check.py").read_bytes())
    return path


def test_packages_the_engine_cannot_import_stop_init_with_what_to_do(tmp_path: Path, capsys):
    numpy = importlib.metadata.version("numpy")
    path = checked_plugins(tmp_path, f"numpy=={numpy}\nprophet==0.0.9\nnot-on-this-machine==2.0\n")
    core, respond = engine_core()
    with RecordingServer(respond) as server:
        assert run_init(server, path) == 1
    log = capsys.readouterr().err
    assert "2 of 3 plugin packages are not usable" in log
    assert f"prophet {importlib.metadata.version('prophet')} is installed, 0.0.9 is pinned" in log
    assert "not-on-this-machine is not installed" in log and "needs access to PyPI" in log
    created = [r.json()["trigger_name"] for r in server.matching("POST", "/api/v3/configure/processing_engine_trigger")]
    assert created == ["packages-check"], "no plugin trigger is created before its packages are proven"
    assert core.packages == [f"numpy=={numpy}", "prophet==0.0.9", "not-on-this-machine==2.0"]


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


def test_packages_that_import_let_init_go_on(tmp_path: Path, capsys):
    path = checked_plugins(tmp_path, f"numpy=={importlib.metadata.version('numpy')}\n")
    core, respond = engine_core()
    with RecordingServer(respond) as server:
        assert run_init(server, path) == 0
    steps = [r.path.rsplit("/", 1)[-1] for r in server.matching("POST")
             if r.path.startswith("/api/v3/engine/") or r.path.endswith("/install_packages")]
    assert steps == ["install_packages", "packages-check"]
    assert "all 1 plugin packages import at their pinned versions" in capsys.readouterr().err
    assert set(core.triggers) == {("forecast", "packages-check"), ("telemetry", "sensors-statistics"),
                                  ("forecast", "forecast-daily")}


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
    with RecordingServer(FakeCore()) as server:
        environ = {"INFLUXDB3_URL": server.url, "INFLUXDB3_TOKEN_FILE": str(secret),
                   "PROVISION_FILE": str(provision_file)}
        assert main([], environ) == 0
    assert server.requests[0].header("authorization") == f"Bearer {TOKEN}"


def test_recreate_deletes_then_creates_triggers(provision_file: Path):
    core = FakeCore()

    def with_delete(request: Recorded) -> Reply:
        if request.method == "DELETE":
            existed = core.triggers.pop((request.param("db"), request.param("trigger_name")), None)
            return Reply(200 if existed is not None else 404)
        return core(request)

    with RecordingServer(with_delete) as server:
        assert run_init(server, provision_file) == 0
        assert run_init(server, provision_file, PROVISION_RECREATE_TRIGGERS="true") == 0
    deletes = server.matching("DELETE", "/api/v3/configure/processing_engine_trigger")
    assert [d.query["trigger_name"] for d in deletes] == [["sensors-statistics"], ["forecast-daily"]]
    assert all(d.query["force"] == ["true"] for d in deletes)
    assert core.triggers == {("telemetry", "sensors-statistics"): True, ("forecast", "forecast-daily"): True}


def test_bootstrap_requests_fill_empty_tables_once(tmp_path: Path, capsys):
    path = write_plugins(tmp_path, BOOTSTRAPPED)
    core = FakeCore()
    with RecordingServer(core) as server:
        assert run_init(server, path) == 0
        calls = server.matching("POST", "/api/v3/engine/views-load")
        assert len(calls) == 1 and calls[0].json() == {}
        last_trigger = max(i for i, r in enumerate(server.requests) if "processing_engine_trigger" in r.path)
        assert server.requests.index(calls[0]) > last_trigger, "bootstrap runs after every trigger is enabled"
        assert run_init(server, path) == 0  # the table has rows now: nothing is sent again
        assert len(server.matching("POST", "/api/v3/engine/views-load")) == 1
    log = capsys.readouterr().err
    assert "bootstrap views-load: skipped, forecast.views already has 120 rows" in log


def test_a_failed_bootstrap_is_reported_but_not_fatal(tmp_path: Path, capsys):
    path = write_plugins(tmp_path, BOOTSTRAPPED)
    core = FakeCore()

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
    with RecordingServer(FakeCore()) as server:
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
    assert {db.name for db in spec.databases} <= {"telemetry", "monitoring", "forecast"}
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
