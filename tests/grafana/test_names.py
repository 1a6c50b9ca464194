"""Every table, measurement, tag and field a query names is one the writers declare.

SQL is planned and run by DataFusion against empty tables that have exactly the declared columns
(ingest.schema, plugins/stacklib/tables.py, and the statistics tables of the provisioned statistics triggers),
so an undeclared name fails with DataFusion's own error. Flux cannot be run here: its bucket, measurement,
field and tag names are read from the query text and checked against the same declarations.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from backup import metrics as backup_metrics
from grafana.datasources import SQL_LANGUAGE
from ingest.schema import MEASUREMENTS
from tests.grafana.dashboards import Variable, boards, database_at, queries, resolve, variables
from tests.grafana.expand import TimeRange, expand_sql, interpolate, references
from tests.grafana.sqlrun import declared

BOARDS = boards()
NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)
# Any string does for a variable, but a forecast run id must start with its RFC 3339 start time.
PLACEHOLDER = "2026-01-15T12:00:00Z-check"


def declared_options(variable: Variable, text: str, time_range: TimeRange) -> list[str]:
    """Options from the empty catalog: information_schema lists the declared tables; other lists are empty,
    so a placeholder value stands in (a string shaped like a run id)."""
    if variable.datasource.language != SQL_LANGUAGE:
        return [PLACEHOLDER]
    table = declared(variable.datasource.database).sql(expand_sql(text, time_range, 60_000)).to_arrow_table()
    strings = [field.name for field in table.schema if pa.types.is_string(field.type)]
    values = [str(v) for v in table.column(strings[0]).to_pylist()] if strings and table.num_rows else []
    return values or [PLACEHOLDER]


def sql_texts(uid: str) -> list[tuple[str, str, str]]:
    """(label, database, SQL as the database receives it) for every SQL query and SQL variable of a dashboard."""
    board = BOARDS[uid]
    selected, _ = resolve(board, NOW, declared_options)
    time_range = TimeRange(NOW.replace(year=2025), NOW)
    found = [(f"{uid}: variable {item.name}", item.datasource, interpolate(item.query, selected))
             for item in variables(board) if item.datasource.language == SQL_LANGUAGE]
    found += [(query.label, query.datasource, interpolate(query.text, selected))
              for query in queries(board, uid) if query.is_sql]
    # A panel over a live database runs on `history` too (its hidden store variable picks it for long ranges).
    return [(label, database, expand_sql(text, time_range, 60_000)) for label, source, text in found
            for database in dict.fromkeys((source.database, database_at(source, time_range, NOW)))]


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_sql_names_only_declared_tables_and_columns(uid):
    problems = []
    for label, database, sql in sql_texts(uid):
        try:
            declared(database).sql(sql).collect()
        except Exception as exc:  # DataFusion's planning errors name the unknown table or column
            problems.append(f"{label} (database {database}): {str(exc).splitlines()[0]}")
    assert not problems, "\n".join(problems)


def declared_flux() -> dict[str, dict[str, set[str]]]:
    """bucket -> measurement -> tag and field names, as the writers declare them for InfluxDB 2."""
    found: dict[str, dict[str, set[str]]] = {}
    for item in MEASUREMENTS:
        found.setdefault(item.database, {})[item.name] = {*item.tags, *item.field_names}
    found.setdefault(backup_metrics.TARGET, {})[backup_metrics.MEASUREMENT] = {*backup_metrics.TAGS,
                                                                                *backup_metrics.FIELDS}
    return found


def flux_names(text: str) -> tuple[set[str], set[str], set[str], set[str]]:
    """Buckets, measurements, fields and other columns (tags) a Flux query names."""
    buckets = set(re.findall(r'bucket:\s*"([^"]+)"', text))
    measurements = set(re.findall(r'r\._measurement\s*==\s*"([^"]+)"', text))
    fields = set(re.findall(r'r\._field\s*==\s*"([^"]+)"', text))
    columns = {name for name in re.findall(r"\br\.(\w+)", text) if not name.startswith("_")}
    columns |= {name for group in re.findall(r"columns:\s*\[([^\]]*)\]", text)
                for name in re.findall(r'"(\w+)"', group) if not name.startswith("_")}
    columns |= set(re.findall(r'tag:\s*"([^"]+)"', text))
    return buckets, measurements, fields, columns


def flux_texts() -> list[tuple[str, str]]:
    found = []
    for uid, board in BOARDS.items():
        found += [(f"{uid}: variable {item.name}", item.query) for item in variables(board)
                  if item.datasource.language != SQL_LANGUAGE]
        found += [(query.label, query.text) for query in queries(board, uid) if not query.is_sql]
    return found


def test_flux_names_only_declared_buckets_measurements_fields_and_tags():
    declared_names = declared_flux()
    texts = flux_texts()
    assert len(texts) >= 10, "the stack health dashboard reads the service metrics with Flux"
    problems = []
    for label, text in texts:
        buckets, measurements, fields, columns = flux_names(text)
        if not buckets:
            problems.append(f"{label}: no from(bucket: ...)")
        for bucket in buckets - set(declared_names):
            problems.append(f"{label}: bucket {bucket!r} is not a declared bucket")
        known = {name: cols for bucket in buckets for name, cols in declared_names.get(bucket, {}).items()}
        if not measurements:
            problems.append(f"{label}: no measurement filter")
        for name in measurements - set(known):
            problems.append(f"{label}: measurement {name!r} is not written to {sorted(buckets)}")
        names = set().union(*(known.get(name, set()) for name in measurements)) if measurements else set()
        problems += [f"{label}: {name!r} is not a declared field or tag of {sorted(measurements)}"
                     for name in sorted((fields | columns) - names)]
    assert not problems, "\n".join(problems)


def test_flux_filters_by_the_dashboard_range_and_uses_only_regex_formatted_variables():
    for label, text in flux_texts():
        assert "start: v.timeRangeStart" in text, f"{label}: not limited to the dashboard's range"
        for name, fmt in references(text):
            assert fmt == "regex", f"{label}: ${{{name}}} in Flux must use :regex (used inside /^...$/)"
