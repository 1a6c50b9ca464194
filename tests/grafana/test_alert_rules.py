"""Every alert rule's query on the local engine, over points the real writers produce, evaluated as Grafana does
(tests/grafana/alerts.py): each fires on data that should fire it and stays quiet on data that should not.

Writers: the ingest service's run metrics (RunSummary.table, encoded by ingest.outputs.METRICS), the backup
service's run points (backup.report.run_points), the simulated sensor fleet (ingest.sources.sensors.Fleet and its
encoder) and the real forecast plugins (the dashboards' session data, tests/grafana/data.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from backup import metrics as backup_metrics
from backup.manifest import StoreResult
from backup.report import run_points
from grafana.alerting.settings import DEFAULTS, Settings
from ingest.lineprotocol import Encoded
from ingest.outputs import METRICS
from ingest.schema import INGEST_RUNS, MEASUREMENTS, MONITORING, SENSORS, TELEMETRY
from ingest.sources.sensors import ENCODER, Fleet
from ingest.stats import RunSummary, SinkResult
from tests.engine import LocalEngine
from tests.grafana import flight_types
from tests.grafana.alerts import evaluate, is_sql, numbers, rule, rules, seen_from, sql_of
from tests.grafana.data import StackData
from tests.grafana.sqlrun import declared, hydrate

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop")

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
MINUTE = timedelta(minutes=1)
SINKS = ("influxdb2", "influxdb3")
FLEET = Fleet(6, 42, (("office", 1.0), ("lab", 1.0), ("greenhouse", 1.0)))


def text(encoded: Encoded) -> str:
    return "".join(line for chunk in encoded.chunks for line in chunk.to_pylist())


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9


def minutes(start: datetime, end: datetime) -> Iterator[datetime]:
    moment = start
    while moment <= end:
        yield moment
        moment += MINUTE


@pytest.fixture
def engine() -> LocalEngine:
    created = LocalEngine()
    created.restart()
    return created


# ---- the writers ----------------------------------------------------------------------------------------
def report_ingest(engine: LocalEngine, start: datetime, end: datetime,
                  written: Callable[[datetime, str], int] = lambda moment, sink: 60) -> None:
    """What `python -m ingest run` writes once a minute: one point per sink for the sensors job."""
    for moment in minutes(start, end):
        sinks = {sink: SinkResult(written=written(moment, sink), batches=1) for sink in SINKS}
        for result in sinks.values():
            if result.written == 0:
                result.spooled, result.spool_files, result.spool_bytes = 60, 3, 4096
        summary = RunSummary("sensors", 60.0, read=60, sinks=sinks)
        engine.write(INGEST_RUNS.database, text(METRICS.encode(summary.table(ns(moment)))))


def report_backup(engine: LocalEngine, moment: datetime, *, ok: bool) -> None:
    """What one backup run writes: a point per store and one for the run (store=all)."""
    stores = {"influxdb2": StoreResult("ok", 3.0, 1000, 2), "influxdb3": StoreResult("ok", 5.0, 2000, 4),
              "grafana": StoreResult("ok" if ok else "failed", 1.0, 100 if ok else 0, 1 if ok else 0,
                                     error=None if ok else "Grafana answered 503 to /api/search")}
    lines = run_points({"set": "20260101T235900Z" if ok else "", "stores": stores, "duration_seconds": 9.0,
                        "success": ok, "error": None if ok else "grafana: Grafana answered 503 to /api/search"},
                       trigger="schedule", moment=moment)
    engine.write(backup_metrics.TARGET, lines)


def write_sensors(engine: LocalEngine, start: datetime, end: datetime,
                  change: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame) -> pd.DataFrame:
    """The simulated fleet's readings every 10 s (what the sensors job writes), after `change`."""
    frame = change(FLEET.readings(ns(start), ns(end), 10).to_pandas())
    engine.write(TELEMETRY, text(ENCODER.encode(frame)))
    return frame


def recent(frame: pd.DataFrame, since: datetime) -> pd.Series:
    return frame["time"] >= ns(since)


# ---- shape and names --------------------------------------------------------------------------------------
def test_every_sql_rule_names_declared_columns_and_answers_one_number_per_row():
    checked = 0
    for uid, item in rules().items():
        if not is_sql(item):
            continue
        database, sql = sql_of(item, NOW)
        try:
            table = hydrate(declared(database).sql(sql).to_arrow_table())
        except Exception as exc:  # DataFusion's planning error names the unknown table or column
            raise AssertionError(f"{uid}: {str(exc).splitlines()[0]}") from None
        numbers(table)  # raises, naming what Grafana would not alert on
        expected = flight_types.recorded().get(f"alert {uid}")
        assert expected in (None, flight_types.type_names(table)), (
            f"{uid}: here {flight_types.type_names(table)}, over Flight SQL on the real server {expected}")
        checked += 1
    assert checked == len(rules()) - 1, "every rule but the InfluxDB 2 probe is SQL"


def test_the_flux_rule_reads_a_declared_bucket():
    item = rule("influx-stack-influxdb2-unreachable")
    flux = item["data"][0]["model"]["query"]
    buckets = set(re.findall(r'r\.name == "([^"]+)"', flux))
    declared_buckets = {measurement.database for measurement in MEASUREMENTS} | {backup_metrics.TARGET}
    assert buckets and buckets <= declared_buckets
    assert "_value: 1" in flux and "_time: now()" in flux, "a one-point series that reduce(last) turns into 1"


# ---- ingest -----------------------------------------------------------------------------------------------
def test_ingest_that_reports_and_writes_is_quiet(engine):
    report_ingest(engine, NOW - timedelta(hours=2), NOW)
    for uid in ("influx-stack-ingest-not-reporting", "influx-stack-ingest-no-writes"):
        assert evaluate(rule(uid), engine, NOW + timedelta(seconds=30)).state == "Normal", uid


def test_stopped_ingest_fires_not_reporting_soon_and_long_after(engine):
    report_ingest(engine, NOW - timedelta(hours=2), NOW)
    silent = rule("influx-stack-ingest-not-reporting")
    assert evaluate(silent, engine, NOW + 9 * MINUTE).state == "Normal"
    soon = evaluate(silent, engine, NOW + 12 * MINUTE)
    assert soon.state == "Alerting" and soon.values == [({}, 12 * 60.0)]
    # Long after the last report the answer is the whole range, still above the limit.
    assert evaluate(silent, engine, NOW + timedelta(days=3)).state == "Alerting"
    # No report at all was ever written: still one row, still firing (not "no data").
    assert evaluate(silent, _empty_monitoring(), NOW).state == "Alerting"
    # Writes-per-sink has nothing to say without reports: that is the other rule's job.
    assert evaluate(rule("influx-stack-ingest-no-writes"), engine, NOW + 12 * MINUTE).state == "Normal"


def _empty_monitoring() -> LocalEngine:
    created = LocalEngine()
    created.restart()
    report_ingest(created, NOW - timedelta(days=30), NOW - timedelta(days=30))  # creates the table, long ago
    return created


def test_ingest_up_but_writing_nothing_to_one_database_fires_for_that_sink(engine):
    outage = NOW - 15 * MINUTE
    report_ingest(engine, NOW - timedelta(hours=2), NOW,
                  written=lambda moment, sink: 0 if sink == "influxdb2" and moment >= outage else 60)
    result = evaluate(rule("influx-stack-ingest-no-writes"), engine, NOW + 30 * timedelta(seconds=1))
    assert result.state == "Alerting" and result.firing == [{"sink": "influxdb2"}]
    assert evaluate(rule("influx-stack-ingest-not-reporting"), engine, NOW + MINUTE).state == "Normal"


# ---- backups ----------------------------------------------------------------------------------------------
def test_a_failed_backup_run_fires_with_its_error_and_a_later_success_clears_it(engine):
    report_backup(engine, NOW - timedelta(hours=49), ok=True)
    report_backup(engine, NOW - timedelta(hours=25), ok=True)
    report_backup(engine, NOW - timedelta(hours=1), ok=False)
    failed, stale = rule("influx-stack-backup-failed"), rule("influx-stack-backup-stale")
    result = evaluate(failed, engine, NOW)
    assert result.state == "Alerting"
    assert result.firing == [{"error": "grafana: Grafana answered 503 to /api/search"}]
    assert evaluate(stale, engine, NOW).state == "Normal", "the last verified set is 25 h old, the limit 26 h"
    assert evaluate(stale, engine, NOW + timedelta(hours=2)).state == "Alerting"
    report_backup(engine, NOW, ok=True)
    assert evaluate(failed, engine, NOW + MINUTE).state == "Normal"
    assert evaluate(stale, engine, NOW + MINUTE).state == "Normal"


def test_no_backup_for_days_is_stale_and_a_store_point_alone_is_not_a_run(engine):
    report_backup(engine, NOW - timedelta(days=5), ok=True)
    assert evaluate(rule("influx-stack-backup-stale"), engine, NOW).state == "Alerting"
    # Only the store=all point says whether the run as a whole worked.
    store_only = [line for line in run_points(
        {"set": "", "stores": {"grafana": StoreResult("failed", error="x")}, "duration_seconds": 1.0,
         "success": True, "error": None}, trigger="manual", moment=NOW) if "store=all" not in line]
    engine.write(backup_metrics.TARGET, store_only)
    assert evaluate(rule("influx-stack-backup-failed"), engine, NOW + MINUTE).state == "Normal"


def test_a_run_point_stamped_in_the_evaluations_own_second_is_seen_from_the_next_second(engine):
    """Why the whole-stack test once saw a fresh stack's first backup as missing (value 2 x ALERT_BACKUP_MAX_AGE):
    it evaluated within the second the run point was stamped in, and Grafana's range ends at that second's start."""
    stamped = NOW + timedelta(milliseconds=300)
    report_backup(engine, stamped, ok=True)
    stale = rule("influx-stack-backup-stale")
    same_second = evaluate(stale, engine, stamped + timedelta(milliseconds=400))
    assert same_second.state == "Alerting" and same_second.values == [({}, 2 * DEFAULTS.backup_max_age)]
    assert seen_from(stamped) == NOW + timedelta(seconds=1) and seen_from(NOW) == NOW
    assert evaluate(stale, engine, seen_from(stamped)).state == "Normal"


# ---- databases --------------------------------------------------------------------------------------------
def test_the_influxdb3_probe_is_quiet_while_it_answers_and_fires_when_it_does_not(engine):
    report_ingest(engine, NOW - timedelta(hours=1), NOW)
    probe = rule("influx-stack-influxdb3-unreachable")
    assert evaluate(probe, engine, NOW).state == "Normal"
    down = evaluate(probe, None, NOW)
    assert down.state == "Alerting" and "connection refused" in down.error
    # The data rules reading the same database say Error (a DatasourceError alert), not a false firing.
    for uid in ("influx-stack-ingest-not-reporting", "influx-stack-backup-stale"):
        assert evaluate(rule(uid), None, NOW).state == "Error", uid


# ---- sensors ----------------------------------------------------------------------------------------------
def test_the_simulated_fleet_on_a_normal_day_fires_no_range_or_silence_alert(engine):
    write_sensors(engine, NOW - timedelta(hours=3), NOW)
    for uid in ("influx-stack-sensor-co2", "influx-stack-sensor-temperature", "influx-stack-sensor-humidity",
                "influx-stack-sensor-silent"):
        result = evaluate(rule(uid), engine, NOW)
        assert result.state == "Normal", f"{uid}: {result.firing}"
        assert len(result.values) == len(FLEET.devices), f"{uid}: one instance per device"


def test_a_co2_spike_fires_for_that_device_only(engine):
    def spike(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[(frame["device"] == "sensor-02") & recent(frame, NOW - 20 * MINUTE), "co2"] = 2600.0
        return frame

    frame = write_sensors(engine, NOW - timedelta(hours=3), NOW, spike)
    result = evaluate(rule("influx-stack-sensor-co2"), engine, NOW)
    location = frame.loc[frame["device"] == "sensor-02", "location"].iloc[0]
    assert result.state == "Alerting" and result.firing == [{"device": "sensor-02", "location": location}]
    # A limit above the spike keeps it quiet: the threshold comes from ALERT_CO2_MAX.
    assert evaluate(rule("influx-stack-sensor-co2", Settings(co2_max=3000)), engine, NOW).state == "Normal"


def test_a_hot_dry_room_fires_temperature_and_humidity(engine):
    def heatwave(frame: pd.DataFrame) -> pd.DataFrame:
        hot = (frame["device"] == "sensor-05") & recent(frame, NOW - 15 * MINUTE)
        frame.loc[hot, "temperature"], frame.loc[hot, "humidity"] = 34.5, 12.0
        return frame

    write_sensors(engine, NOW - timedelta(hours=1), NOW, heatwave)
    for uid in ("influx-stack-sensor-temperature", "influx-stack-sensor-humidity"):
        assert evaluate(rule(uid), engine, NOW).firing_for("device") == ["sensor-05"], uid


def test_battery_fires_exactly_for_the_devices_whose_mean_is_below_the_limit(engine):
    frame = write_sensors(engine, NOW - timedelta(hours=1), NOW)
    window = frame[recent(frame, NOW - timedelta(seconds=DEFAULTS.sensor_window))]
    means = window.groupby("device")["battery"].mean()
    for limit in (DEFAULTS.battery_min, float(means.median())):
        expected = sorted(means[means < limit].index)
        result = evaluate(rule("influx-stack-sensor-battery", Settings(battery_min=limit)), engine, NOW)
        assert result.firing_for("device") == expected, limit


def test_a_device_that_stops_sending_fires_silent_for_that_device(engine):
    write_sensors(engine, NOW - timedelta(hours=2), NOW, lambda frame: frame[
        ~((frame["device"] == "sensor-03") & recent(frame, NOW - 40 * MINUTE))])
    result = evaluate(rule("influx-stack-sensor-silent"), engine, NOW)
    assert result.firing_for("device") == ["sensor-03"]
    silent_for = next(value for labels, value in result.values if labels["device"] == "sensor-03")
    assert 40 * 60 <= silent_for <= 41 * 60


def test_no_sensor_data_at_all_is_no_alert(engine):
    write_sensors(engine, NOW - timedelta(days=3), NOW - timedelta(days=3) + MINUTE)
    for uid in ("influx-stack-sensor-co2", "influx-stack-sensor-battery"):
        assert evaluate(rule(uid), engine, NOW).state == "Normal", uid


# ---- forecast (the real plugins' output) -------------------------------------------------------------------
def test_forecast_rules_over_the_plugins_runs(stack_data: StackData):
    engine = stack_data.engine
    at = datetime.now(UTC)
    accuracy = evaluate(rule("influx-stack-forecast-inaccurate"), engine, at)
    assert [labels for labels, _ in accuracy.values] == [{"series": stack_data.series}], "the latest run per series"
    mape = accuracy.values[0][1]
    assert accuracy.state == ("Alerting" if mape > DEFAULTS.forecast_mape_max else "Normal")
    strict = evaluate(rule("influx-stack-forecast-inaccurate", Settings(forecast_mape_max=mape / 2)), engine, at)
    assert strict.firing == [{"series": stack_data.series}]
    stale = rule("influx-stack-forecast-stale")
    assert evaluate(stale, engine, at).state == "Normal", "the latest run was an hour ago"
    assert evaluate(stale, engine, at + timedelta(days=3)).state == "Alerting"


def test_monitoring_is_one_database_for_ingest_backup_and_the_probe():
    assert INGEST_RUNS.database == backup_metrics.TARGET == MONITORING
    assert SENSORS.database == TELEMETRY
