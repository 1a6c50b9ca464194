"""The dashboards in the running stack: every panel's and variable's query returning data from the real
databases after ingest (and the plugins and a backup) have run; with Grafana, listed, healthy, queried through
Grafana itself, and a screenshot of each dashboard for the README.

Data is loaded the way a user would: generated Movebank and Open-Meteo files through the ingest command, a
simulated sensor backfill, a generated daily series through the load plugin with a forecast trigger firing every
few seconds (temporary triggers, deleted after), and one backup run. Every query is then sent as the dashboard
would send it: with Grafana, to its own query API (/api/ds/query), variables resolved through the same API, the
text interpolated as Grafana's frontend does (tests/grafana/expand.py), macros left to Grafana's backend; without
Grafana, straight to InfluxDB 3 (SQL) and InfluxDB 2 (Flux), expanded as Grafana's backend expands them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import requests
import yaml
from grafana_client.client import GrafanaClientError, GrafanaServerError
from PIL import Image
from pyarrow import flight

from backup import metrics as backup_metrics
from grafana import datasources
from grafana.boards import BOARDS as BOARD_MODULES
from grafana.panels import FOLDER_TAG
from ingest.schema import BIRD_FIXES, INGEST_RUNS, SENSORS
from plugins.stacklib.tables import (
    EVALUATION,
    FORECAST_DATABASE,
    HOST_DATABASE,
    analytics_table,
    host_table,
)
from plugins.stacklib.tables import SERIES as SERIES_SPEC
from tests.grafana import flight_types
from tests.grafana.chromium import Chromium
from tests.grafana.dashboards import (
    Variable,
    boards,
    panel_range,
    queries,
    repeat_scopes,
    resolve,
    selection_for,
)
from tests.grafana.data import bird_fixes, movebank_csv, open_meteo_hourly, weather_rows
from tests.grafana.expand import TimeRange, expand_flux, expand_sql, interpolate, interval_ms
from tests.grafana.sqlrun import grafana_type_problems
from tests.integration.conftest import wait_for
from tests.plugins.conftest import daily_series, series_csv
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

SCREENSHOTS = REPO / "docs" / "screenshots"
NETWORK = host_table("system_network")
SERIES = "dash-series"
BOARDS = boards()


def provisioned_min_intervals() -> dict[str, str]:
    """uid -> jsonData.timeInterval (Grafana's floor for a query's interval when the panel sets none)."""
    found = {}
    for path in (REPO / "grafana" / "provisioning" / "datasources").glob("*.yaml"):
        for item in yaml.safe_load(path.read_text())["datasources"]:
            if item.get("jsonData", {}).get("timeInterval"):
                found[item["uid"]] = item["jsonData"]["timeInterval"]
    return found


# ---- loading data through the stack's own paths ---------------------------------------------------------
def ingest(stack, *args: str) -> None:
    result = stack.ingest(*args)
    assert result.returncode == 0, f"ingest {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def flux_rows(stack, flux: str) -> int:
    return len(stack.flux_table(flux))


@pytest.fixture(scope="module")
def loaded(stack, temporary_triggers, tmp_path_factory) -> datetime:
    folder = tmp_path_factory.mktemp("dashboards")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(5)

    birds = folder / "dash-birds.csv"
    fixes = bird_fixes(now, rng)
    movebank_csv(fixes, birds)
    ingest(stack, "birds", stack.ingest_file(birds))
    for location, rows in weather_rows(now, rng).groupby("location"):
        path = folder / f"dash-weather-{location}.json"
        path.write_text(json.dumps(open_meteo_hourly(rows)))
        ingest(stack, "weather", "--response-file", stack.ingest_file(path), "--location", str(location))
    ingest(stack, "sensors", "--backfill", "6h")

    series = folder / "dash-series.csv"
    series.write_text(series_csv(daily_series(240, start=str((now - timedelta(days=241)).date()))))
    temporary_triggers("dash-load", FORECAST_DATABASE, "forecast/load_series", "request:dash-load",
                       {"url": stack.influxdb3_file(series), "series": SERIES})
    assert stack.engine("dash-load").status_code == 200
    temporary_triggers("dash-forecast", FORECAST_DATABASE, "forecast/prophet_forecast", "every:10s",
                       {"series": SERIES, "horizon_days": "60", "holdout_days": "14", "min_rows": "30"})
    wait_for("two forecast runs", lambda: stack.sql(FORECAST_DATABASE, f"SELECT count(*) AS n FROM {EVALUATION.name} "
                                                                        f"WHERE series = '{SERIES}'")[0]["n"] >= 2,
             timeout=300)
    # The Forecast dashboard reads the series from its rollups at its default range (20 years): the forecast-rollups
    # trigger rolls the 240 days up in a few of its one-minute runs (hours, then days, then weeks).
    wait_for("the series' weekly rollup", lambda: stack.sql(
        FORECAST_DATABASE, f"SELECT count(*) AS n FROM {SERIES_SPEC.name}_7d WHERE series = '{SERIES}' "
                           "AND time >= now() - INTERVAL '400 days'")[0]["n"] >= 30, timeout=480)

    backup = stack.backup("now")
    assert backup.returncode == 0, f"backup now failed:\n{backup.stdout}\n{backup.stderr}"
    for bucket, measurement in ((backup_metrics.TARGET, backup_metrics.MEASUREMENT),
                                (INGEST_RUNS.database, INGEST_RUNS.name)):
        flux = (f'from(bucket: "{bucket}") |> range(start: -1h) '
                f'|> filter(fn: (r) => r._measurement == "{measurement}") |> limit(n: 1)')
        wait_for(f"{measurement} points in InfluxDB 2", lambda flux=flux: flux_rows(stack, flux) > 0)
    statistics = analytics_table(SENSORS.name).name
    wait_for("sensor statistics", lambda: stack.sql(FORECAST_DATABASE,
                                              f"SELECT count(*) AS n FROM {statistics}")[0]["n"] > 0)
    # The host metrics trigger runs every 30 s; rates need two samples.
    wait_for("two host-metrics samples", lambda: stack.sql(
        HOST_DATABASE, f"SELECT count(DISTINCT time) AS n FROM {NETWORK.name}")[0]["n"] >= 2, timeout=150)
    # The bird-tracks trigger (every minute) summarizes the study a level a run: the weekly level comes last. Wait
    # until it holds every completed week of these fixes (weeks the dashboards read from it over their 10-year
    # range), not just any week: a native stack's run loop loads 2018 fixes at its start, whose week is there early.
    individuals = ", ".join(f"'{name}'" for name in sorted(fixes["individual"].unique()))
    since = f"TIMESTAMP '{fixes['time'].min():%Y-%m-%dT%H:%M:%SZ}'"
    week = "INTERVAL '7 days'"
    completed = f"date_bin({week}, now() - INTERVAL '15 minutes', TIMESTAMP '1970-01-01T00:00:00Z')"
    expected = (f"SELECT count(*) AS n FROM (SELECT DISTINCT individual, date_bin({week}, time, TIMESTAMP "
                f"'1970-01-01T00:00:00Z') AS week FROM {BIRD_FIXES.name} WHERE individual IN ({individuals}) "
                f"AND time >= {since} AND time < {completed})")
    summarized = (f"SELECT count(*) AS n FROM {BIRD_FIXES.name}_7d WHERE individual IN ({individuals}) "
                  f"AND time >= date_bin({week}, {since}, TIMESTAMP '1970-01-01T00:00:00Z') AND time < {completed}")
    wait_for("weekly bird track summaries of every completed week of the fixes", lambda: 0 < stack.sql(
        BIRD_FIXES.database, expected)[0]["n"] <= stack.sql(BIRD_FIXES.database, summarized)[0]["n"], timeout=300)
    return datetime.now(UTC)


# ---- Grafana's query API --------------------------------------------------------------------------------
def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def ds_query(stack, target: dict[str, Any], time_range: TimeRange, interval: int) -> dict[str, Any]:
    """POST /api/ds/query (grafana-client has no method of its own for it: its generic client sends it). A query
    the datasource refuses answers 400 or 500 with the same `results` body."""
    body = {"queries": [{**target, "intervalMs": interval, "maxDataPoints": 1000}],
            "from": ms(time_range.start), "to": ms(time_range.end)}
    try:
        answer = stack.grafana_api().client.POST("/ds/query", json=body)
    except (GrafanaClientError, GrafanaServerError) as exc:
        assert exc.status_code in (400, 500) and isinstance(exc.response, dict), exc.message
        answer = exc.response
    return answer["results"][target["refId"]]


def rows(result: dict[str, Any]) -> int:
    return sum(len(frame["data"]["values"][0]) if frame.get("data", {}).get("values") else 0
               for frame in result.get("frames", []))


def grafana_options(stack):
    """A variable query's options through /api/ds/query, as the InfluxDB datasource's metricFindQuery runs it:
    the first string field of every frame (else the first field that is not a time)."""

    def options_of(variable: Variable, text: str, time_range: TimeRange) -> list[str]:
        target = {"refId": "metricFindQuery", "datasource": variable.datasource.ref().to_json(), "query": text,
                  "rawQuery": True}
        if variable.datasource.language == datasources.SQL_LANGUAGE:
            target.update(rawSql=text, format="table")
        result = ds_query(stack, target, time_range, 60_000)
        assert "error" not in result, f"variable {variable.name}: {result.get('error')}"
        values: dict[str, None] = {}
        for frame in result.get("frames", []):
            fields = frame["schema"]["fields"]
            index = next((i for i, f in enumerate(fields) if f.get("type") == "string"),
                         next((i for i, f in enumerate(fields) if f.get("type") != "time"), None))
            if index is not None and frame.get("data", {}).get("values"):
                values.update((str(value), None) for value in frame["data"]["values"][index] if value is not None)
        return list(values)

    return options_of


# ---- the same queries straight to the databases (no Grafana) --------------------------------------------
def direct_options(stack):
    """A variable query's options from the database itself: its text expanded as Grafana's backend would."""

    def options_of(variable: Variable, text: str, time_range: TimeRange) -> list[str]:
        if variable.datasource.language == datasources.SQL_LANGUAGE:
            # Over Flight SQL, as Grafana reads it: its first string column (a type it cannot read gives none).
            table = stack.flight(variable.datasource.database, expand_sql(text, time_range, 60_000))
            problems = grafana_type_problems(table)
            assert not problems, f"variable {variable.name}: {problems}"
            keys = [field.name for field in table.schema if pa.types.is_string(field.type)]
            return list(dict.fromkeys(str(value) for value in table.column(keys[0]).to_pylist() if value is not None)) \
                if keys else []
        records = stack.flux_table(expand_flux(text, time_range, 60_000, default_bucket=stack.env["INFLUXDB2_BUCKET"],
                                                organization=stack.env["INFLUXDB2_ORG"]))
        return list(dict.fromkeys(row["_value"] for row in records if row.get("_value")))

    return options_of


def direct_rows(stack, query, text: str, time_range: TimeRange, interval: int, problems: list[str]) -> int:
    """Rows of a panel query from its database; an SQL query goes over Flight SQL, and each column whose Arrow type
    Grafana's reader drops is a problem."""
    if query.is_sql:
        table = stack.flight(query.datasource.database, expand_sql(text, time_range, interval))
        problems += [f"{query.label}: {problem}" for problem in grafana_type_problems(table)]
        problems += flight_types.check(query.label, table)
        return table.num_rows
    return len(stack.flux_table(expand_flux(text, time_range, interval, default_bucket=stack.env["INFLUXDB2_BUCKET"],
                                             organization=stack.env["INFLUXDB2_ORG"])))


# ---- the tests ------------------------------------------------------------------------------------------
def test_grafana_lists_every_dashboard_in_the_stack_folder(grafana):
    """Dashboards are provisioned after /api/health turns green: wait for them, as a user's browser would."""
    provider = yaml.safe_load((REPO / "grafana" / "provisioning" / "dashboards" / "influx-stack.yaml")
                              .read_text())["providers"][0]
    expected = sorted(module.UID for module in BOARD_MODULES)

    api = grafana.grafana_api()

    def listed():
        hits = api.search.search_dashboards(type_="dash-db", tag=FOLDER_TAG)
        return hits if sorted(hit["uid"] for hit in hits) == expected else None

    found = wait_for("every provisioned dashboard in Grafana's search", listed, timeout=120)
    assert {hit.get("folderTitle") for hit in found} == {provider["folder"]}
    for uid, board in BOARDS.items():
        saved = api.dashboard.get_dashboard(uid)
        assert saved["meta"]["provisioned"] is True, uid
        assert saved["dashboard"]["title"] == board["title"]
        assert len(saved["dashboard"]["panels"]) == len(board["panels"]), uid


def test_every_datasource_the_dashboards_use_is_healthy(grafana):
    api = grafana.grafana_api()
    for source in datasources.ALL:
        health = api.datasource.health(source.uid)
        assert health["status"] == "OK", f"{source.uid}: {health}"


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_every_panel_query_returns_data(stack, loaded, uid):
    """Through Grafana when the stack has one; otherwise each query goes straight to its database, expanded as
    Grafana's backend expands it (the server's own SQL layer and Flux, not our DataFusion), SQL over Flight SQL
    with every column's Arrow type checked against what Grafana's reader keeps."""
    board = BOARDS[uid]
    options_of = grafana_options(stack) if stack.has_grafana else direct_options(stack)
    selected, options = resolve(board, loaded, options_of)
    empty = [name for name, values in options.items() if not values]
    assert not empty, f"{uid}: variables without options: {empty}"
    scopes = repeat_scopes(board)
    floors = provisioned_min_intervals()
    problems = []
    for query in queries(board, uid):
        values = selection_for(query.panel, scopes, selected, options)
        time_range = panel_range(board, query.panel, loaded)
        interval = interval_ms(time_range, 1000, query.panel.get("interval") or floors.get(query.datasource.uid))
        target = dict(query.target)
        key = "rawSql" if query.is_sql else "query"
        target[key] = interpolate(target[key], values)
        if stack.has_grafana:
            result = ds_query(stack, target, time_range, interval)
            if result.get("error"):
                problems.append(f"{query.label}: {result['error']}")
            elif rows(result) == 0:
                problems.append(f"{query.label}: no data")
            continue
        try:
            if direct_rows(stack, query, target[key], time_range, interval, problems) == 0:
                problems.append(f"{query.label}: no data")
        except (requests.HTTPError, flight.FlightError) as exc:
            problems.append(f"{query.label}: {exc}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def viewer_token(grafana) -> Iterator[str]:
    """A Viewer service account token (Grafana's documented way for a program to read dashboards)."""
    api = grafana.grafana_api()
    name = f"dashboard-screenshots-{int(time.time())}"
    number = api.serviceaccount.create({"name": name, "role": "Viewer", "isDisabled": False})["id"]
    token = api.serviceaccount.create_token(number, {"name": name, "secondsToLive": 3600})
    yield token["key"]
    api.serviceaccount.delete(number)


@pytest.mark.slow
def test_screenshot_of_every_dashboard(stack, loaded, viewer_token):
    """docs/screenshots/<uid>.png, each dashboard at its default range (kiosk mode: no menus)."""
    headers = {"Authorization": f"Bearer {viewer_token}"}
    with Chromium(width=1600, height=1400) as browser:
        for uid in BOARDS:
            path = browser.screenshot(f"{stack.grafana_url}/d/{uid}?orgId=1&kiosk", SCREENSHOTS / f"{uid}.png",
                                      headers, quiet=3.0, timeout=120)
            title = browser.evaluate("document.title")
            assert BOARDS[uid]["title"] in title, f"{uid}: the page is {title!r}, not the dashboard (login page?)"
            errors = browser.evaluate("document.querySelectorAll('[data-testid*=\"Panel status error\"]').length")
            assert errors == 0, f"{uid}: {errors} panels show an error"
            colours = Image.open(path).convert("RGB").resize((160, 140)).getcolors(maxcolors=160 * 140)
            assert colours is None or len(colours) > 50, f"{uid}: the screenshot is nearly blank"
