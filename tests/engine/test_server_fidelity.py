"""The local engine answers as InfluxDB 3 Core v3.10.1 does where the engine used to differ from the server.

Each test names the source it holds the engine to (paths under influxdata/influxdb, tag v3.10.1).
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.engine import CatalogError, LocalEngine, PackageEnvironment, QueryError, WriteError
from tests.engine.store import COLUMNS_PER_TABLE_LIMIT, DATABASE_LIMIT, TABLE_LIMIT

REQUEST = "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n"
SCHEDULE = "def process_scheduled_call(influxdb3_local, call_time, args=None):\n"


def plugin(tmp_path, name: str, source: str) -> LocalEngine:
    (tmp_path / name).write_text(source)
    return LocalEngine(plugin_dir=tmp_path)


# 1. system_py.rs: query(query, args=None, database=None), write_sync, write_sync_to_db
def test_query_takes_a_database_and_names_it_in_errors(tmp_path):
    local = plugin(tmp_path, "q.py", REQUEST + (
        "    db = query_parameters.get('db')\n"
        "    try:\n"
        "        return {'rows': influxdb3_local.query('SELECT v FROM m', database=db)}\n"
        "    except Exception as exc:\n"
        "        return {'error': str(exc), 'type': type(exc).__name__}\n"))
    local.write_lp("other", ["m v=2.0 1"])
    assert local.run_request("q.py", "own", {"db": "other"}).response.json() == {"rows": [{"v": 2.0}]}
    missing = local.run_request("q.py", "own", {"db": "nope"}).response.json()
    assert missing == {"error": "error: database not found: nope executing query on nope: SELECT v FROM m",
                       "type": "QueryError"}
    assert "nope" not in local.databases, "a query never creates a database"
    bad = local.run_request("q.py", "own", {"db": "a b"}).response.json()
    assert bad["error"].startswith("invalid database name provided: database name 'a b' contains invalid character")


def test_write_sync_writes_at_once_and_raises_the_engine_error(tmp_path):
    local = plugin(tmp_path, "w.py", REQUEST + (
        "    influxdb3_local.write_sync(LineBuilder('m').float64_field('v', 1.0).time_ns(1), False)\n"
        "    seen = influxdb3_local.query('SELECT count(*) AS n FROM m')[0]['n']\n"
        "    influxdb3_local.write_sync_to_db('elsewhere', LineBuilder('m').float64_field('v', 2.0).time_ns(1), True)\n"
        "    errors = []\n"
        "    for call in (lambda: influxdb3_local.write_sync(LineBuilder('m').int64_field('v', 3).time_ns(2), False),\n"
        "                 lambda: influxdb3_local.write_sync(LineBuilder('m').float64_field('v', 3.0)),\n"
        "                 lambda: influxdb3_local.write_sync(LineBuilder('m').float64_field('v', 3.0), 1)):\n"
        "        try:\n"
        "            call()\n"
        "        except Exception as exc:\n"
        "            errors.append(f'{type(exc).__name__}: {exc}')\n"
        "    return {'seen': seen, 'errors': errors}\n"))
    body = local.run_request("w.py", "db").raise_for_error().response.json()
    assert body["seen"] == 1, "visible to the plugin's own query at once"
    assert body["errors"][0] == ("Exception: error writing line protocol to db: Cannot write: line protocol parse "
                                 "failed: invalid column type for column 'v', expected iox::column_type::field::float, "
                                 "got iox::column_type::field::integer")
    assert body["errors"][1].startswith("TypeError:") and "no_sync" in body["errors"][1]
    assert body["errors"][2] == "TypeError: argument 'no_sync': 'int' object is not an instance of 'bool'"
    assert local.query("elsewhere", "SELECT v FROM m") == [{"v": 2.0}]


# 2. http.rs / ops/trigger.rs: trigger_arguments None stays None, {} stays an empty dict
def test_trigger_arguments_none_and_empty_map_differ(tmp_path):
    local = plugin(tmp_path, "a.py", SCHEDULE + "    influxdb3_local.info(repr(args))\n")
    assert local.run_schedule("a.py", "db").messages() == ["None"]
    assert local.run_schedule("a.py", "db", args={}).messages() == ["{}"]
    assert local.run_schedule("a.py", "db", args={"k": "v"}).messages() == ["{'k': 'v'}"]


# 3. http.rs processing_engine_request_plugin: hyper's lowercase header names, Authorization filtered
def test_request_headers_reach_the_plugin_lowercased_without_authorization(tmp_path):
    local = plugin(tmp_path, "h.py", REQUEST + "    return dict(request_headers)\n")
    sent = {"Content-Type": "application/json", "X-Custom-Header": "A b", "Authorization": "Bearer secret"}
    assert local.run_request("h.py", "db", headers=sent).response.json() == {
        "content-type": "application/json", "x-custom-header": "A b"}


# 4. plugins.rs process_request: an exception is HTTP 500 {"error": "Python function call failed: ..."}
def test_a_raising_request_plugin_answers_500_with_the_engine_error_and_writes_nothing(tmp_path):
    local = plugin(tmp_path, "boom.py", REQUEST + (
        "    influxdb3_local.write(LineBuilder('out').int64_field('n', 1))\n"
        "    raise RuntimeError('boom')\n"))
    run = local.run_request("boom.py", "db")
    assert run.response.status == 500 and run.response.headers == {}
    assert run.response.body == '{"error":"Python function call failed: RuntimeError: boom"}'
    assert run.messages("ERROR") == ["error running request plugin: Python function call failed: RuntimeError: boom"]
    assert not run.writes and local.query("db", "SELECT table_name FROM information_schema.tables "
                                                "WHERE table_name = 'out'") == []
    wal = plugin(tmp_path, "wal.py", "def process_writes(influxdb3_local, table_batches, args=None):\n"
                                     "    raise KeyError('k')\n").run_writes("wal.py", "db", table_batches=[])
    assert wal.error_message == "KeyError: 'k'", "only the request path adds 'Python function call failed'"


def test_missing_entry_point_and_import_errors_carry_the_engine_texts(tmp_path):
    local = plugin(tmp_path, "none.py", "X = 1\n")
    run = local.run_request("none.py", "db")
    assert run.response.json()["error"].startswith("the process_request function is not present in the plugin.")
    package = tmp_path / "uniq_broken_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("import uniq_no_such_module_xyz\n")
    broken = local.run_request("uniq_broken_plugin", "db").response.json()["error"]
    assert broken == ("Failed to import plugin module 'uniq_broken_plugin': ModuleNotFoundError: No module named "
                      "'uniq_no_such_module_xyz'\nHint: Check for syntax errors or missing dependencies in Python "
                      "files.")


# 5. system_py.rs execute_request_trigger: a failed conversion returns before write_accumulator.flush()
def test_an_unconvertible_return_value_discards_the_queued_lines(tmp_path):
    local = plugin(tmp_path, "odd.py", REQUEST + (
        "    influxdb3_local.write(LineBuilder('out').int64_field('n', 1).time_ns(1))\n"
        "    return {'n': 1} if query_parameters.get('ok') else 42\n"))
    run = local.run_request("odd.py", "db")
    assert run.response.status == 500
    assert run.response.json() == {"error": "Unsupported return type from Python function"}
    assert not run.writes
    assert local.run_request("odd.py", "db", {"ok": "1"}).raise_for_error().writes == {"db": ["out n=1i 1"]}
    bad_headers = plugin(tmp_path, "hdr.py", REQUEST + "    return 'x', 200, {'X-N': 1}\n").run_request("hdr.py", "db")
    assert bad_headers.response.json() == {"error": "TypeError: 'int' object is not an instance of 'str'"}


def test_response_conversion_edge_cases_follow_the_engine():
    from tests.engine.responses import to_response

    assert to_response(("x", True)).status == 500, "a bool is an int to pyo3: status 1, invalid, 500"
    assert to_response(("x", 99)).status == 500 and to_response(("x", 999)).status == 999
    assert to_response(iter([b"ok", b"\xff", "!"])).body == "ok!", "bytes that are not UTF-8 are skipped whole"
    assert to_response({"a": 1}).body == '{"a": 1}', "Python's json.dumps with its default separators"
    assert to_response(()).content_type == "text/html", "an empty tuple is iterated"


# 6. A multi-file plugin is imported once per process (system_py.rs load_function_from_module); single files are
#    executed afresh on every call; a restart is a new process; disabling a trigger only drops its cache.
def test_folder_plugins_are_imported_once_per_process(tmp_path):
    package = tmp_path / "uniq_counter_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("CALLS = []\n" + SCHEDULE + (
        "    CALLS.append(1)\n"
        "    influxdb3_local.info('v1', len(CALLS))\n"))
    (tmp_path / "single.py").write_text("CALLS = []\n" + SCHEDULE + (
        "    CALLS.append(1)\n"
        "    influxdb3_local.info('v1', len(CALLS))\n"))
    local = LocalEngine(plugin_dir=tmp_path)
    local.restart()
    try:
        assert local.run_schedule("uniq_counter_plugin", "db").messages() == ["v1 1"]
        assert local.run_schedule("single.py", "db").messages() == ["v1 1"]
        (package / "__init__.py").write_text(SCHEDULE + "    influxdb3_local.info('v2')\n")
        (tmp_path / "single.py").write_text(SCHEDULE + "    influxdb3_local.info('v2')\n")
        assert local.run_schedule("uniq_counter_plugin", "db").messages() == ["v1 2"], "module state lives on"
        assert local.run_schedule("single.py", "db").messages() == ["v2"], "a single file is re-read"
        local.drop_trigger_cache("db", "t")
        assert local.run_schedule("uniq_counter_plugin", "db").messages() == ["v1 3"]
        local.restart()
        assert local.run_schedule("uniq_counter_plugin", "db").messages() == ["v2"], "a new process imports anew"
    finally:
        local.restart()
    assert "uniq_counter_plugin" not in sys.modules


# 7. influxdb3/src/commands/serve.rs CORE_NUM_*_LIMIT and influxdb3_catalog/src/error.rs texts
def test_core_catalog_limits_and_their_messages():
    assert (DATABASE_LIMIT, TABLE_LIMIT, COLUMNS_PER_TABLE_LIMIT) == (5, 2000, 500)
    local = LocalEngine()
    fields = ",".join(f"f{index}={index}.0" for index in range(COLUMNS_PER_TABLE_LIMIT))
    local.write_lp("db", [f"wide {fields} 1"])
    with pytest.raises(WriteError, match=r"^line protocol parse failed: Update to schema would exceed number of "
                                         r"columns per table limit of 500 columns$"):
        local.write_lp("db", ["wide extra=1.0 2"])
    local.write_lp("db", [f"t{index} v=1.0 1" for index in range(TABLE_LIMIT - 2)])  # with `wide`: 1,999
    result = local.write("db", ["t_last v=1.0 1", "t_over v=1.0 1"], accept_partial=True)
    assert result.line_count == 1
    assert [error.error_message for error in result.line_errors] == [
        "Update to schema would exceed number of tables limit: attempted to create table but already have 2000 "
        "table(s) (limit: 2000)"]
    other = LocalEngine()
    for index in range(4):
        other.write_lp(f"db{index}", ["m v=1.0 1"])
    other.create_database("db4")
    with pytest.raises(CatalogError, match=r"^Adding a new database would exceed limit of 5 databases$"):
        other.write_lp("db5", ["m v=1.0 1"])
    assert "_internal" in [db.name for db in other.all_databases()], "listed, never counted"


def test_a_partial_write_commits_catalog_changes_and_reports_lines():
    local = LocalEngine()
    result = local.write("db", "m,t=a v=1.0 1\n\nm v=oops 2\nm t=1.0 3\nn v=1i 4", accept_partial=True)
    assert result.line_count == 2
    errors = [error.as_json() for error in result.line_errors]
    # validator.rs: a parse error names the index-th raw line (the blank line shifts it), a validation error
    # the parsed line printed back; original_line is cut to 20 bytes (influxdb3_types/src/write.rs)
    assert [(e["line_number"], e["original_line"]) for e in errors] == [(2, ""), (3, "m t=1 3")]
    assert errors[1]["error_message"] == ("invalid column type for column 't', expected iox::column_type::tag, got "
                                          "iox::column_type::field::float")
    with pytest.raises(WriteError, match="incoming write was empty"):
        local.write("fresh", "\n# only a comment\n")
    assert "fresh" in local.databases, "the catalog change (a new database) was committed before the check"


def test_package_environment_answers_importlib_metadata_in_plugins(tmp_path):
    local = plugin(tmp_path, "p.py", REQUEST + (
        "    import importlib.metadata as md\n"
        "    out = {}\n"
        "    for name in ('stand-in-pkg', 'other_pkg', 'pytest'):\n"
        "        try:\n"
        "            out[name] = md.version(name)\n"
        "        except md.PackageNotFoundError:\n"
        "            out[name] = None\n"
        "    return out\n"))
    local.packages = PackageEnvironment(installable={"stand-in-pkg": ["1.0", "1.2"], "other-pkg": "2.0"})
    assert local.packages.pip_install(["stand-in-pkg==1.0", "missing-pkg"]) is False, "pip resolves all or nothing"
    body = local.run_request("p.py", "db").response.json()
    assert body["stand-in-pkg"] is None and body["other_pkg"] is None and body["pytest"] is not None
    assert local.packages.pip_install(["stand_in_pkg", "other-pkg==2.0"]) is True
    body = local.run_request("p.py", "db").response.json()
    assert (body["stand-in-pkg"], body["other_pkg"]) == ("1.2", "2.0")
    import importlib.metadata as md

    with pytest.raises(md.PackageNotFoundError):
        md.version("stand-in-pkg")  # outside a plugin call the test interpreter answers


def test_query_results_and_errors_keep_the_server_conversions():
    local = LocalEngine()
    local.write_lp("db", ["m,host=a v=1.5 1000", "m,host=b n=2i 2000"])
    assert local.query("db", "SELECT * FROM m ORDER BY time") == [
        {"host": "a", "n": None, "time": 1000, "v": 1.5}, {"host": "b", "n": 2, "time": 2000, "v": None}]
    assert list(local.query("db", "SELECT * FROM m")[0]) == ["host", "n", "time", "v"], "columns sorted by name"
    with pytest.raises(QueryError) as raised:
        local.query("db", "SELEC 1")
    assert raised.value.status == 400 and raised.value.datafusion.startswith("SQL error: ParserError(")
    assert json.loads(json.dumps(local.query("db", "SELECT 'x' AS s"))) == [{"s": "x"}], "no Utf8View for literals"
    assert time.time_ns() > 0
