"""The InfluxDB 3 Core stand-in (tests/support/influxdb3.py) answers as influxdb3_server/src/http.rs (v3.10.1)."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
import requests

from tests.engine import LocalEngine
from tests.support.influxdb3 import InfluxDB3, influxdb3_server, serve  # noqa: F401
from tests.support.recorder import Reply

REQUEST = "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n"
ECHO = REQUEST + (
    "    influxdb3_local.write(LineBuilder('calls').tag('path', 'echo').int64_field('n', 1).time_ns(1))\n"
    "    if query_parameters.get('fail'):\n"
    "        raise ValueError('asked to fail')\n"
    "    return {'query': query_parameters, 'headers': request_headers, 'body': request_body.decode(),\n"
    "            'args': args}, 201, {'X-Plugin': 'yes'}\n")
SETTINGS = {"run_async": False, "error_behavior": "log"}


@pytest.fixture
def core(tmp_path):
    (tmp_path / "echo.py").write_text(ECHO)
    (tmp_path / "tick.py").write_text("def process_scheduled_call(influxdb3_local, call_time, args=None):\n"
                                      "    pass\n")
    stand_in = InfluxDB3(LocalEngine(plugin_dir=tmp_path), installable={"stand-in-pkg": ["1.0", "2.0"]})
    with serve(stand_in) as server:
        stand_in.url = server.url
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stand_in.token}"
        stand_in.http = session
        yield stand_in


def call(core, method: str, path: str, **kwargs) -> requests.Response:
    return core.http.request(method, core.url + path, timeout=30, **kwargs)


def trigger(name: str, plugin: str, spec: str, **extra) -> dict:
    return {"db": "db", "plugin_filename": plugin, "trigger_name": name, "trigger_specification": spec,
            "trigger_settings": SETTINGS, "disabled": False, **extra}


def test_authentication_schemes_and_the_open_paths(core):
    bare = requests.get(core.url + "/api/v3/configure/database", params={"format": "json"}, timeout=10)
    assert (bare.status_code, bare.text) == (401, '{"error": "the request was not authenticated"}')
    assert "access-control-allow-origin" not in bare.headers, "only successful answers carry the CORS header"
    for scheme in (f"Bearer {core.token}", f"Token {core.token}",
                   "Basic " + base64.b64encode(f"anyone:{core.token}".encode()).decode()):
        ok = requests.get(core.url + "/api/v3/configure/database", params={"format": "json"},
                          headers={"Authorization": scheme}, timeout=10)
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "*"
    wrong = requests.get(core.url + "/ping", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 200, "--disable-authz health,ping: not authenticated at all"
    malformed = requests.get(core.url + "/api/v3/configure/database", headers={"Authorization": "Bearer a b"},
                             timeout=10)
    assert malformed.status_code == 400 and "Authorization header was malformed" in malformed.text
    health = requests.get(core.url + "/health", timeout=10)
    assert (health.status_code, health.text, health.headers["content-type"]) == (200, "OK",
                                                                                 "text/plain; charset=utf-8")
    ping = requests.get(core.url + "/ping", timeout=10).json()
    assert ping["version"] == "3.10.1" and ping["product_name"] == "InfluxDB 3 Core"
    assert requests.get(core.url + "/nowhere", timeout=10).status_code == 401, "authentication comes first"
    assert (call(core, "GET", "/nowhere").status_code, call(core, "GET", "/nowhere").text) == (404, "Not found")
    strict = InfluxDB3(LocalEngine(), disable_authz=())
    with serve(strict) as server:
        assert requests.get(server.url + "/health", timeout=10).status_code == 401


def test_databases_list_create_limits_and_soft_delete(core):
    assert call(core, "GET", "/api/v3/configure/database").text == "serde error: missing field `format`"
    listing = call(core, "GET", "/api/v3/configure/database", params={"format": "json"})
    assert listing.json() == [{"iox::database": "_internal"}]
    assert listing.headers["content-type"] == "application/json"
    created = call(core, "POST", "/api/v3/configure/database", json={"db": "db", "retention_period": "30d"})
    assert (created.status_code, created.content) == (200, b"")
    again = call(core, "POST", "/api/v3/configure/database", json={"db": "db"})
    assert (again.status_code, again.text) == (409, "attempted to create a resource that already exists")
    no_json = call(core, "POST", "/api/v3/configure/database", data='{"db": "x"}')
    assert (no_json.status_code, no_json.text) == (415, "unacceptable content-type, expected: application/json")
    bad = call(core, "POST", "/api/v3/configure/database", json={"db": "_x"})
    assert (bad.status_code, bad.json()) == (400, {"error": "db name did not start with a number or letter"})
    missing = call(core, "POST", "/api/v3/configure/database", json={"name": "x"})
    assert (missing.status_code, missing.text) == (400, "serde json error: missing field `db` at line 1 column 13")
    for index in range(4):
        assert call(core, "POST", "/api/v3/configure/database", json={"db": f"d{index}"}).status_code == 200
    sixth = call(core, "POST", "/api/v3/configure/database", json={"db": "d9"})
    assert (sixth.status_code, sixth.text) == (422, '{"error":"Adding a new database would exceed limit of 5 '
                                                    'databases"}')
    assert call(core, "DELETE", "/api/v3/configure/database", params={"db": "d0"}).status_code == 200
    assert call(core, "DELETE", "/api/v3/configure/database", params={"db": "d0"}).status_code == 404
    assert call(core, "DELETE", "/api/v3/configure/database", params={"db": "_internal"}).status_code == 500
    rows = call(core, "GET", "/api/v3/configure/database", params={"format": "json", "show_deleted": "true"}).json()
    assert [row["iox::database"] for row in rows][:5] == ["_internal", "d1", "d2", "d3", "db"]
    assert rows[-1]["deleted"] is True and rows[-1]["iox::database"].startswith("d0-")
    assert call(core, "POST", "/api/v3/configure/database", json={"db": "d0"}).status_code == 200, "name is free"


def test_tables_are_created_with_their_database(core):
    body = {"db": "fresh", "table": "sensors", "tags": ["device"],
            "fields": [{"name": "temperature", "type": "float64"}, {"name": "ok", "type": "bool"}]}
    assert call(core, "POST", "/api/v3/configure/table", json=body).status_code == 200
    assert call(core, "POST", "/api/v3/configure/table", json=body).status_code == 409
    odd = call(core, "POST", "/api/v3/configure/table", json={**body, "fields": [{"name": "x", "type": "float"}]})
    assert odd.status_code == 400 and odd.text.startswith("serde json error: unknown variant `float`, expected one "
                                                          "of `utf8`, `int64`, `uint64`, `float64`, `bool`")
    columns = call(core, "POST", "/api/v3/query_sql", json={
        "db": "fresh", "q": "SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'sensors' ORDER BY column_name"}).json()
    assert [(c["column_name"], c["data_type"].split("(")[0]) for c in columns] == [
        ("device", "Dictionary"), ("ok", "Boolean"), ("temperature", "Float64"), ("time", "Timestamp")]


def test_package_install_answers_200_whatever_pip_did(core):
    assert call(core, "POST", "/api/v3/configure/plugin_environment/install_packages",
                json={"packages": ["stand-in-pkg==9.9"]}).status_code == 200
    assert core.packages.installed == {} and core.packages.pip_runs == [(["stand-in-pkg==9.9"], False)]
    ok = call(core, "POST", "/api/v3/configure/plugin_environment/install_packages",
              json={"packages": ["stand-in-pkg==1.0"]})
    assert (ok.status_code, ok.content) == (200, b"") and core.packages.installed == {"stand-in-pkg": "1.0"}
    assert call(core, "POST", "/api/v3/configure/plugin_environment/install_packages",
                data='{"packages": []}').status_code == 415


def test_triggers_create_enable_disable_delete(core):
    call(core, "POST", "/api/v3/configure/database", json={"db": "db"})
    path = "/api/v3/configure/processing_engine_trigger"
    no_file = call(core, "POST", path, json=trigger("t", "gone.py", "request:x"))
    assert no_file.status_code == 500 and no_file.text.startswith("Plugin error: reading plugin file: Plugin not "
                                                                  "found: ")
    no_settings = {key: value for key, value in trigger("t", "echo.py", "request:x").items()
                   if key != "trigger_settings"}
    lacking = call(core, "POST", path, json=no_settings)
    assert lacking.status_code == 400 and lacking.text.startswith("serde json error: missing field `trigger_settings`")
    assert call(core, "POST", path, json={**trigger("t", "echo.py", "request:x"), "db": "nope"}).text == \
        "Database not found nope"
    bad_spec = call(core, "POST", path, json=trigger("t", "echo.py", "sometimes"))
    assert bad_spec.status_code == 500 and bad_spec.text.startswith("failed to parse trigger from sometimes: expect")
    created = call(core, "POST", path, json=trigger("echo", "echo.py", "request:echo", trigger_arguments={"k": "v"}))
    assert (created.status_code, created.content) == (200, b"")
    assert call(core, "POST", path, json=trigger("echo", "echo.py", "request:echo")).status_code == 409
    assert call(core, "POST", path, json=trigger("tick", "tick.py", "cron:0 0 3 * * *")).status_code == 200
    toggle = {"db": "db", "trigger_name": "echo"}
    assert call(core, "POST", path + "/enable", params=toggle).status_code == 200, "enabling an enabled one is 200"
    assert call(core, "POST", path + "/disable", params=toggle).status_code == 200
    gone = call(core, "GET", "/api/v3/engine/echo")
    assert (gone.status_code, gone.text) == (404, '{error: "not found"}')
    assert call(core, "POST", path + "/enable", params=toggle).status_code == 200
    assert call(core, "GET", "/api/v3/engine/echo").status_code == 201
    rows = call(core, "POST", "/api/v3/query_sql", json={
        "db": "db", "q": "SELECT trigger_name, trigger_specification, disabled, error_behavior "
                         "FROM system.processing_engine_triggers ORDER BY trigger_name"}).json()
    assert rows == [{"trigger_name": "echo", "trigger_specification": '{"request_path":{"path":"echo"}}',
                     "disabled": False, "error_behavior": "log"},
                    {"trigger_name": "tick", "trigger_specification": '{"schedule":{"schedule":"0 0 3 * * *"}}',
                     "disabled": False, "error_behavior": "log"}]
    running = call(core, "DELETE", path, params={"db": "db", "trigger_name": "echo"})
    assert (running.status_code, running.text) == (500, "Cannot delete running plugin echo. Disable it first or "
                                                        "use --force.")
    assert call(core, "DELETE", path, params={"db": "db", "trigger_name": "echo", "force": "true"}).status_code == 200
    assert call(core, "DELETE", path, params={"db": "db", "trigger_name": "echo"}).status_code == 404


def test_request_trigger_end_to_end(core):
    call(core, "POST", "/api/v3/configure/database", json={"db": "db"})
    call(core, "POST", "/api/v3/configure/processing_engine_trigger",
         json=trigger("echo", "echo.py", "request:echo", trigger_arguments={}))
    answer = call(core, "POST", "/api/v3/engine/echo?a=1&a=2&b=x+y", data=b"payload",
                  headers={"X-Mixed-Case": "Value", "Content-Type": "text/plain"})
    assert answer.status_code == 201 and answer.headers["x-plugin"] == "yes"
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["query"] == {"a": "2", "b": "x y"} and body["body"] == "payload" and body["args"] == {}
    assert body["headers"]["x-mixed-case"] == "Value" and "authorization" not in body["headers"]
    assert call(core, "POST", "/api/v3/query_sql", json={"db": "db", "q": "SELECT n FROM calls"}).json() == [{"n": 1}]
    failed = call(core, "GET", "/api/v3/engine/echo", params={"fail": "1"})
    assert (failed.status_code, failed.text) == (500, '{"error":"Python function call failed: ValueError: asked to '
                                                      'fail"}')
    assert "content-type" not in failed.headers
    assert call(core, "POST", "/api/v3/query_sql", json={"db": "db", "q": "SELECT count(*) AS n FROM calls"}).json() \
        == [{"n": 1}], "the failed call's queued write was dropped"
    assert [run.error_message for run in core.runs] == [None, "Python function call failed: ValueError: asked to fail"]


def test_write_lp_statuses_partial_writes_and_limits(core):
    write = "/api/v3/write_lp"
    assert call(core, "POST", write, params={"db": "db"}, data="m,t=a v=1.0 1700000000").status_code == 204
    assert call(core, "POST", "/api/v3/query_sql", json={"db": "db", "q": "SELECT time FROM m"}).json() == [
        {"time": "2023-11-14T22:13:20"}], "precision auto: a 10-digit timestamp is seconds"
    partial = call(core, "POST", write, params={"db": "db"},
                   data="m,t=b v=2.0 1700000001\nmeasurement_with_a_long_name,t=c v=bad 1\nm v=1i 3")
    assert partial.status_code == 400
    assert partial.json() == {"error": "partial write of line protocol occurred", "data": [
        {"error_message": partial.json()["data"][0]["error_message"], "line_number": 2,
         "original_line": "measurement_with_a_l"},
        {"error_message": "invalid column type for column 'v', expected iox::column_type::field::float, got "
                          "iox::column_type::field::integer", "line_number": 3, "original_line": "m v=1i 3"}]}
    strict = call(core, "POST", write, params={"db": "db", "accept_partial": "false"}, data="m v=1i 4\nm v=5.0 5")
    assert strict.status_code == 400 and strict.json()["error"] == "line protocol parsing error"
    assert strict.json()["data"]["line_number"] == 1, "one object, not a list"
    packed = call(core, "POST", write, params={"db": "db", "precision": "ns"},
                  data=gzip.compress(b"m,t=z v=9.0 1700000000000000000"), headers={"Content-Encoding": "gzip"})
    assert packed.status_code == 204
    assert call(core, "POST", write, params={"db": "db"}, data="",).text == "incoming write was empty"
    assert call(core, "POST", write, data="m v=1.0").text == "missing query parameter 'db'"
    for index in range(4):
        assert call(core, "POST", write, params={"db": f"d{index}"}, data="m v=1.0 1").status_code == 204
    limit = call(core, "POST", write, params={"db": "d9"}, data="m v=1.0 1")
    assert (limit.status_code, limit.json()) == (422, {"error": "Adding a new database would exceed limit of 5 "
                                                                "databases"})


def test_query_sql_formats_errors_and_the_file_limit(core):
    core.engine.query_file_limit = 3
    call(core, "POST", "/api/v3/write_lp", params={"db": "db", "precision": "second"},
         data="\n".join(f"m,t=a v={day}.5,n={day}i {1700000000 + day * 86400}" for day in range(5)) + "\nm,t=b n=9i 1")
    rows = call(core, "GET", "/api/v3/query_sql", params={"db": "db", "q": "SELECT * FROM m ORDER BY time LIMIT 2",
                                                          "format": "json"})
    assert rows.json() == [{"n": 9, "t": "b", "time": "1970-01-01T00:00:01"},
                           {"n": 0, "t": "a", "time": "2023-11-14T22:13:20", "v": 0.5}], "nulls are left out"
    lines = call(core, "POST", "/api/v3/query_sql", json={"db": "db", "q": "SELECT n FROM m WHERE n = $n",
                                                          "params": {"n": 9}, "format": "jsonl"})
    assert (lines.text, lines.headers["content-type"]) == ('{"n":9}\n', "application/jsonl")
    missing_db = call(core, "POST", "/api/v3/query_sql", json={"db": "nope", "q": "SELECT 1"})
    assert (missing_db.status_code, missing_db.text) == (404, '{"error":"query error: database not found: nope"}')
    missing_table = call(core, "POST", "/api/v3/query_sql", json={"db": "db", "q": "SELECT * FROM x"})
    assert (missing_table.status_code, missing_table.text) == (400, "Error during planning: table 'public.iox.x' "
                                                                    "not found")
    core.engine.snapshot()
    assert call(core, "POST", "/api/v3/query_sql", json={
        "db": "db", "q": "SELECT count(*) AS files, sum(row_count) AS n FROM system.parquet_files "
                         "WHERE table_name = 'm'"}).json() == [{"files": 6, "n": 6}]
    with pytest.raises(requests.ConnectionError):  # parquet_files.rs: `.expect("table exists")` panics
        call(core, "POST", "/api/v3/query_sql", json={"db": "db", "q": "SELECT * FROM system.parquet_files "
                                                                       "WHERE table_name = 'nope'"})
    over = call(core, "POST", "/api/v3/query_sql", json={"db": "db", "q": "SELECT count(*) FROM m"})
    assert over.status_code == 500 and over.text.startswith("External error: Query would scan 3 Parquet files, "
                                                            "exceeding the file limit.")
    narrow = call(core, "POST", "/api/v3/query_sql", json={
        "db": "db", "q": "SELECT count(*) AS c FROM m WHERE time > '2023-11-16T00:00:00Z'"})
    assert narrow.json() == [{"c": 3}]


def test_tests_script_outages_and_faults(core):
    core.script("/api/v3/query_sql", None)
    core.script("/health", Reply(503, "busy"), times=2)
    with pytest.raises(requests.ConnectionError):
        call(core, "POST", "/api/v3/query_sql", json={"db": "_internal", "q": "SELECT 1"})
    assert [call(core, "GET", "/health").status_code for _ in range(3)] == [503, 503, 200]


def test_the_fixture_serves_the_repository_plugins(influxdb3_server):  # noqa: F811
    server, stand_in = influxdb3_server
    assert stand_in.engine.plugin_dir.name == "plugins"
    assert requests.get(server.url + "/health", timeout=10).text == "OK"
    assert json.loads(requests.get(server.url + "/ping", timeout=10).text)["version"] == "3.10.1"
