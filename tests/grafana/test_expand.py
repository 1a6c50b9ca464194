"""The emulation of Grafana's query preparation, checked against the expectations of Grafana's own tests
(pkg/tsdb/influxdb/fsql/macro_test.go, formatRegistry tests) so the SQL our tests run is the SQL Grafana sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.grafana.expand import (
    MacroError,
    TimeRange,
    expand_flux,
    expand_sql,
    format_value,
    go_duration,
    grafana_interval,
    interpolate,
    interval_ms,
    references,
    resolve_time,
)

START = datetime(2023, 1, 1, tzinfo=UTC)
RANGE = TimeRange(START, START + timedelta(minutes=10))


@pytest.mark.parametrize(("sql", "expected"), [
    ("select * from x", "select * from x"),
    ("select date_bin($__interval, time, timestamp '1970-01-01T00:00:00Z')",
     "select date_bin(interval '10 second', time, timestamp '1970-01-01T00:00:00Z')"),
    ("select $__dateBin(time)", "select date_bin(interval '10 second', time, timestamp '1970-01-01T00:00:00Z')"),
    ("select $__dateBinAlias(time)",
     "select date_bin(interval '10 second', time, timestamp '1970-01-01T00:00:00Z') as time_binned"),
    ("select * from x where $__timeFilter(time)",
     "select * from x where time >= '2023-01-01T00:00:00Z' AND time <= '2023-01-01T00:10:00Z'"),
    ("select * from x where time >= $__timeFrom",
     "select * from x where time >= cast('2023-01-01T00:00:00Z' as timestamp)"),
    ("select * from x where time < $__timeTo",
     "select * from x where time < cast('2023-01-01T00:10:00Z' as timestamp)"),
])
def test_sql_macros_expand_as_grafanas_own_tests_expect(sql, expected):
    assert expand_sql(sql, RANGE, 10_000) == expected


def test_unexpanded_text_and_bad_macros_are_refused():
    with pytest.raises(MacroError, match="timeFilter"):
        expand_sql("select 1 where $__timeFilter(a, b)", RANGE, 10_000)
    with pytest.raises(MacroError, match=r"\$species"):
        expand_sql("select 1 where species = $species", RANGE, 10_000)
    with pytest.raises(MacroError, match="min interval"):
        expand_sql("select $__dateBin(time)", RANGE, 500)


def test_formats_match_grafanas_format_registry():
    assert format_value(["test'value"], "sqlstring") == "'test''value'"
    assert format_value(["test", "test'value2"], "sqlstring") == "'test','test''value2'"
    assert format_value(["test", "test'2"], "singlequote") == "'test','test\\'2'"
    assert format_value(["a.b", "c"], "regex") == "(a\\.b|c)"
    assert format_value(["a.b"], "regex") == "a\\.b"
    assert format_value(["analytics_sensors"], "raw") == "analytics_sensors"
    with pytest.raises(ValueError, match="not emulated"):
        format_value(["x"], "percentencode")


def test_interpolation_replaces_only_known_variables_and_needs_a_format():
    text = "SELECT * FROM ${table:raw} WHERE $__timeFilter(time) AND f IN (${field:sqlstring}) AND $other"
    assert references(text) == [("table", "raw"), ("field", "sqlstring"), ("other", None)]
    assert interpolate(text, {"table": ["t"], "field": ["a", "b"]}) == (
        "SELECT * FROM t WHERE $__timeFilter(time) AND f IN ('a','b') AND $other")
    with pytest.raises(ValueError, match="no format"):
        interpolate("x = $field", {"field": ["a"]})


def test_interval_is_grafanas_rounded_range_over_data_points_with_the_min_interval_as_floor():
    six_hours = TimeRange(START, START + timedelta(hours=6))
    assert interval_ms(six_hours) == 20_000  # 21.6 s rounds to 20 s
    assert interval_ms(six_hours, min_interval="1m") == 60_000
    assert interval_ms(TimeRange(START, START + timedelta(days=7)), max_data_points=500) == 1_200_000
    assert interval_ms(TimeRange(START, START + timedelta(days=3650))) == 86_400_000  # 3.65 d rounds to 1 d


def test_relative_times():
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert resolve_time("now", now) == now
    assert resolve_time("now-6h", now) == now - timedelta(hours=6)
    assert resolve_time("now-10y", now) == datetime(2016, 3, 31, 12, tzinfo=UTC)
    assert resolve_time("now+1y", now) == datetime(2027, 3, 31, 12, tzinfo=UTC)
    assert resolve_time("now-1M", now) == datetime(2026, 2, 28, 12, tzinfo=UTC)


def test_variable_options_are_sorted_as_grafana_lists_them():
    from tests.grafana.dashboards import sort_options

    ids = ["G-17", "5515879", "5515851", "10"]
    assert sort_options(ids, 0) == ids
    assert sort_options(ids, 1) == ["10", "5515851", "5515879", "G-17"]
    assert sort_options(ids, 7) == ["10", "5515851", "5515879", "G-17"]
    assert sort_options(["x10", "x9", "X8"], 7) == ["X8", "x9", "x10"]
    assert sort_options(["b", "A", "c"], 6) == ["c", "b", "A"]


def test_flux_variables_expand_as_grafanas_own_test_expects():
    """pkg/tsdb/influxdb/flux/macros_test.go TestInterpolate, with the same input and expected output."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    before = ("v.timeRangeStart, something.timeRangeStop, XYZ.bucket, uuUUu.defaultBucket, aBcDefG.organization, "
              "window.windowPeriod, a91{}.bucket")
    after = ('1970-01-01T00:00:00Z, 1970-01-01T00:00:00Z, "grafana2", "grafana3", "grafana1", 1s, a91{}.bucket')
    assert expand_flux(before, TimeRange(epoch, epoch), 1000, bucket="grafana2", default_bucket="grafana3",
                       organization="grafana1") == after


@pytest.mark.parametrize(("ms", "go", "grafana"), [
    (500, "500ms", "500ms"), (1000, "1s", "1s"), (1500, "1.5s", "1s"), (10_000, "10s", "10s"),
    (60_000, "1m0s", "1m"), (90_000, "1m30s", "1m"), (3_600_000, "1h0m0s", "1h"), (86_400_000, "24h0m0s", "1d"),
    (8 * 86_400_000, "192h0m0s", "8d"), (0, "0s", "1ms"),
])
def test_interval_texts_are_gos_and_grafanas(ms, go, grafana):
    assert go_duration(ms) == go and grafana_interval(ms) == grafana
