"""The local engine behaves like InfluxDB 3's plugin runtime where plugins can tell the difference."""

from __future__ import annotations

import sys
from datetime import datetime

import pytest

from tests.engine import CatalogError, LineBuilder, LocalEngine, QueryError, WriteError
from tests.engine.__main__ import main as cli_main
from tests.engine.fixtures import engine, engine_clock  # noqa: F401
from tests.engine.linebuilder import InvalidKeyError, InvalidLineError, InvalidMeasurementError
from tests.engine.responses import to_response


def test_line_builder_rules_and_formatting():
    line = (LineBuilder("my,table").tag("host", "a b,c=d").float64_field("x", 2.0).float64_field("y", 0.5)
            .int64_field("n", -3).uint64_field("u", 4).bool_field("ok", True).string_field("s", 'say "hi"\\')
            .time_ns(7).build())
    assert line == 'my\\,table,host=a\\ b\\,c\\=d x=2.0,y=0.5,n=-3i,u=4u,ok=t,s="say \\"hi\\"\\\\" 7'
    with pytest.raises(InvalidMeasurementError):
        LineBuilder("a b")
    for key in ("", "a b", "a,b", "a=b"):
        with pytest.raises(InvalidKeyError):
            LineBuilder("m").tag(key, "v")
    with pytest.raises(ValueError, match="negative"):
        LineBuilder("m").uint64_field("u", -1)
    with pytest.raises(InvalidLineError):
        LineBuilder("m").tag("t", "v").build()


def test_queued_writes_are_all_or_nothing_per_database(tmp_path):
    plugin = tmp_path / "bad_write.py"
    plugin.write_text(
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n"
        "    influxdb3_local.write(LineBuilder('m').float64_field('v', 1.0).time_ns(1))\n"
        "    influxdb3_local.write(LineBuilder('m').float64_field('v', float('nan')).time_ns(2))\n"
        "    influxdb3_local.write_to_db('other', LineBuilder('m').float64_field('v', 3.0).time_ns(3))\n")
    local = LocalEngine(plugin_dir=tmp_path)
    run = local.run_schedule("bad_write.py", "db")
    assert run.error is None and len(run.write_errors) == 1 and "db" in run.write_errors[0]
    with pytest.raises(QueryError):
        local.query("db", "SELECT * FROM m")  # nothing of the refused write landed
    assert local.query("other", "SELECT v FROM m") == [{"v": 3.0}]


def test_query_results_are_converted_like_the_engine(engine):  # noqa: F811
    engine.write_lp("db", ["m,host=a v=1.5,n=2i,ok=true,s=\"x\" 1000", "m,host=a v=2.5 1000"])
    assert engine.query("db", "SELECT * FROM m") == [
        {"time": 1000, "host": "a", "v": 2.5, "n": 2, "ok": True, "s": "x"}]  # same series and time: merged
    assert engine.query("db", "SELECT count(*) AS c FROM m WHERE host = $h", {"h": "a"}) == [{"c": 1}]
    # system_py.rs: an Arrow type the engine does not convert is a ValueError, not a QueryError
    with pytest.raises(ValueError, match=r"^Unsupported data type: Date32$"):
        engine.query("db", "SELECT CAST(time AS DATE) AS d FROM m")
    with pytest.raises(QueryError, match=r"^error: error while planning query: Error during planning: table "
                                         r"'public.iox.missing' not found executing query on db: SELECT"):
        engine.query("db", "SELECT * FROM missing")
    # the catalog's InvalidColumnType, wrapped as the write buffer reports a line error
    with pytest.raises(WriteError, match=r"^line protocol parse failed: invalid column type for column 'v', "
                                         r"expected iox::column_type::field::float, got "
                                         r"iox::column_type::field::integer$"):
        engine.write_lp("db", ["m v=1i 2000"])
    with pytest.raises(WriteError, match="expected iox::column_type::tag, got iox::column_type::field::float"):
        engine.write_lp("db", ["m host=1.0 3000"])
    tags = engine.query("db", "SELECT data_type FROM information_schema.columns WHERE column_name = 'host'")
    assert tags[0]["data_type"].startswith("Dictionary(")


def test_database_names_and_the_core_limit():
    local = LocalEngine()
    for index in range(5):
        local.create_database(f"db{index}")
    with pytest.raises(CatalogError, match=r"^Adding a new database would exceed limit of 5 databases$"):
        local.create_database("db5")
    # http.rs validate_db_name
    with pytest.raises(WriteError, match="db name did not start with a number or letter"):
        LocalEngine().create_database("-bad")
    assert local.databases == [f"db{index}" for index in range(5)], "_internal is not a user database"


def test_cache_scopes_ttl_and_references(engine, engine_clock, tmp_path):  # noqa: F811
    plugin = tmp_path / "cache.py"
    plugin.write_text(
        "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n"
        "    c = influxdb3_local.cache\n"
        "    if query_parameters.get('put'):\n"
        "        c.put('k', [1], ttl=10); c.put('g', 'global', use_global=True)\n"
        "        c.get('k').append(2)\n"
        "    return {'k': c.get('k', 'none'), 'g': c.get('g', use_global=True), 'args': args}\n")
    local = LocalEngine(plugin_dir=tmp_path, clock=engine_clock)
    assert local.run_request("cache.py", "db", {"put": "1"}, trigger="t1").response.json() == {
        "k": [1, 2], "g": "global", "args": None}
    assert local.run_request("cache.py", "db", trigger="t2").response.json()["k"] == "none"
    engine_clock.advance(10)
    assert local.run_request("cache.py", "db", trigger="t1", args={"a": "1"}).response.json() == {
        "k": "none", "g": "global", "args": {"a": "1"}}


def test_response_conventions():
    assert to_response("<p>x</p>").content_type == "text/html"
    assert to_response({"a": 1}).json() == {"a": 1}
    response = to_response(("gone", 404, {"X-A": "1"}))
    assert (response.status, response.headers) == (404, {"Content-Type": "text/html", "X-A": "1"})
    assert to_response(([1], {"X-B": "2"})).headers == {"Content-Type": "application/json", "X-B": "2"}
    assert to_response(iter(["a", b"b"])).body == "ab"


def test_single_file_plugins_have_no_file_and_multi_file_plugins_import_by_folder_name(tmp_path):
    (tmp_path / "single.py").write_text(
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n"
        "    influxdb3_local.info(str('__file__' in globals()), type(call_time).__name__, str(call_time.tzinfo))\n")
    package = tmp_path / "group" / "uniq_multi_plugin"
    package.mkdir(parents=True)
    (package / "helper.py").write_text("VALUE = 'from helper'\n")
    (package / "__init__.py").write_text(
        "from .helper import VALUE\n"
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n"
        "    influxdb3_local.info(__name__, VALUE)\n")
    local = LocalEngine(plugin_dir=tmp_path)
    assert local.run_schedule("single.py", "db", datetime(2024, 1, 1)).messages() == ["False datetime None"]
    assert local.run_schedule("group/uniq_multi_plugin", "db").messages() == ["uniq_multi_plugin from helper"]
    assert str(tmp_path / "group") not in sys.path
    local.restart()


def test_a_plugin_inserting_at_sys_path_zero_is_refused(tmp_path):
    package = tmp_path / "uniq_bad_path_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("import sys\nsys.path.insert(0, '/nowhere')\n"
                                         "def process_scheduled_call(influxdb3_local, call_time, args=None):\n"
                                         "    pass\n")
    run = LocalEngine(plugin_dir=tmp_path).run_schedule("uniq_bad_path_plugin", "db")
    sys.path.remove("/nowhere")
    assert "changed sys.path[0]" in run.error


def test_cli_runs_a_wal_plugin(tmp_path, capsys):
    batch = tmp_path / "batch.lp"
    batch.write_text("sensors,device=a temperature=20.0 1000\nsensors,device=b temperature=22.0 2000\n")
    status = cli_main(["wal", "plugins/statistics/table_stats", "-d", "telemetry", "--table", "sensors",
                       "--lp", str(batch), "--arg", "bucket=1h"])
    output = capsys.readouterr().out
    assert status == 0
    assert "analytics_sensors,field=temperature,bucket=1h count=2i,min=20.0,max=22.0,mean=21.0" in output
    assert cli_main(["schedule", "examples/heartbeat.py", "-d", "db", "--arg", "table=a;b"]) == 0


def test_a_plugin_that_raises_writes_nothing(tmp_path):
    (tmp_path / "raises.py").write_text(
        "def process_writes(influxdb3_local, table_batches, args=None):\n"
        "    influxdb3_local.write(LineBuilder('out').int64_field('n', 1))\n"
        "    raise RuntimeError('boom')\n")
    local = LocalEngine(plugin_dir=tmp_path)
    run = local.run_writes("raises.py", "db", ["m v=1.0 1"], table="m")
    assert "RuntimeError: boom" in run.error and not run.writes
    assert local.query("db", "SELECT table_name FROM information_schema.tables WHERE table_name = 'out'") == []
    with pytest.raises(Exception, match="boom"):
        run.raise_for_error()
