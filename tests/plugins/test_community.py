"""The host-metrics tables: what the whole-stack tier's loopback plugin repository serves writes them as declared."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from plugins.stacklib.tables import HOST_DATABASE, HOST_TABLES
from tests.engine import LocalEngine
from tests.integration.plugin_repo import HOST_METRICS_PATH, host_metrics_plugin

SQL_TYPES = {"float64": "Float64", "uint64": "UInt64"}


def test_the_stand_in_host_plugin_writes_every_host_table_with_its_declared_types(tmp_path: Path):
    (tmp_path / "system_metrics.py").write_text(host_metrics_plugin())
    engine = LocalEngine(plugin_dir=tmp_path)
    engine.create_database(HOST_DATABASE)
    for minute in (0, 1):
        engine.run_schedule("system_metrics.py", HOST_DATABASE, datetime(2026, 1, 1, 0, minute),
                            args={"hostname": "it"}).raise_for_error()
    assert HOST_METRICS_PATH.endswith("/system_metrics.py")
    for spec in HOST_TABLES:
        columns = {row["column_name"]: row["data_type"] for row in engine.query(
            HOST_DATABASE, "SELECT column_name, data_type FROM information_schema.columns "
                           f"WHERE table_name = '{spec.name}'")}
        assert {name: columns.get(name) for name, _ in spec.fields} == {
            name: SQL_TYPES[kind] for name, kind in spec.fields}, spec.name
        assert set(spec.tags) <= set(columns)
        rows = engine.query(HOST_DATABASE, f"SELECT count(*) AS n FROM {spec.name} WHERE host = 'it'")
        assert rows[0]["n"] == 2, spec.name
