"""Bird movements: tracks on a map, daily distance and speed, fixes per individual, outliers (bird_fixes)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.models import common, dashboard, units
from grafana_foundation_sdk.models import geomap as geomap_models

from grafana import history
from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_HISTORY
from grafana.names import field, tag
from grafana.panels import (
    bar_chart,
    board,
    finish,
    override,
    sql_in,
    stat_panel,
    table_panel,
    time_series,
    variable,
)
from grafana.queries import TABLE, TIME_SERIES, SqlQuery
from grafana.units import grafana_unit
from ingest.schema import BIRD_FIXES
from plugins.stacklib.tracks import haversine_km
from plugins.stacklib.windows import over

UID = "birds"
DS = SQL_HISTORY
TABLE_NAME = BIRD_FIXES.name
SPECIES, INDIVIDUAL = tag(BIRD_FIXES, "species"), tag(BIRD_FIXES, "individual")
LAT, LON = field(BIRD_FIXES, "lat"), field(BIRD_FIXES, "lon")
TAGS = (SPECIES, INDIVIDUAL)  # what the track summaries are kept per (the bird-tracks trigger's `by`)
SELECTED = f"{sql_in(SPECIES, 'species')} AND {sql_in(INDIVIDUAL, 'individual')}"
# Over ranges the weekly summaries serve, a bar is a week's distance per day.
WEEKLY = history.reads(history.TIERS[-1])
WEEK_DAYS = history.TIERS[-1].width_s // 86_400


def tracks(where: str = SELECTED) -> str:
    """The fixes of the range as track summaries: raw fixes over short ranges, then hourly, daily and weekly
    summaries (grafana/history.py `track_source`), so no panel reads years of raw fixes."""
    return history.track_source(TABLE_NAME, TAGS, where)


def daily_movement(value: str) -> str:
    """Per individual and UTC day (week, over the longest ranges): km flown between consecutive good fixes and km/h
    over the time those legs took. A summary row holds the legs inside it; the leg from one row's last position
    to the next one's first is added here. `value` is the column the panel shows: distance_km or speed_kmh."""
    window = over(INDIVIDUAL)
    legs = (f"SELECT time, {INDIVIDUAL}, km, hours, "
            f"{haversine_km(f'lag(last_lat) {window}', f'lag(last_lon) {window}', 'first_lat', 'first_lon')} "
            f"AS leg_km, (first_ns - lag(last_ns) {window}) / 3600000000000.0 AS leg_hours\n"
            f"FROM {tracks()}\nWHERE good > 0")
    total_km = "sum(km) + coalesce(sum(leg_km), 0)"
    measures = {"distance_km": f"({total_km}) / (CASE WHEN {WEEKLY} THEN {WEEK_DAYS} ELSE 1 END)",
                "speed_kmh": f"({total_km}) / nullif(sum(hours) + coalesce(sum(leg_hours), 0), 0)"}
    day = f"date_bin(INTERVAL '1 day', time, {history.EPOCH})"
    week = f"date_bin(INTERVAL '{WEEK_DAYS} days', time, {history.EPOCH})"
    return (f"SELECT CASE WHEN {WEEKLY} THEN {week} ELSE {day} END AS time, {INDIVIDUAL}, "
            f"{measures[value]} AS {value}\nFROM ({legs}) AS legs\nGROUP BY 1, {INDIVIDUAL}\nORDER BY 1, {INDIVIDUAL}")


def _marker_style(color: str, size: int, symbol: str) -> dict[str, object]:
    return {"color": {"fixed": color}, "opacity": 0.9, "size": {"fixed": size, "min": 2, "max": 15},
            "symbol": {"fixed": f"img/icons/marker/{symbol}.svg", "mode": "fixed"},
            "symbolAlign": {"horizontal": "center", "vertical": "center"},
            "rotation": {"fixed": 0, "mode": "mod", "min": -360, "max": 360},
            "textConfig": {"fontSize": 12, "offsetX": 0, "offsetY": 0, "textAlign": "center",
                           "textBaseline": "middle"}}


def _coords() -> common_builders.FrameGeometrySource:
    return (common_builders.FrameGeometrySource().mode(common.FrameGeometrySourceMode.COORDS)
            .latitude(LAT.name).longitude(LON.name))


def _layer(kind: str, name: str, ref_id: str, config: dict[str, object]) -> common_builders.MapLayerOptions:
    return (common_builders.MapLayerOptions().type(kind).name(name).config(config).location(_coords())
            .filter_data({"id": "byRefId", "options": ref_id}).tooltip(True))


def track_map() -> geomap.Panel:
    """One map per selected individual (repeated): its route, where it is now, and its outliers."""
    source = tracks(sql_in(INDIVIDUAL, "individual"))
    route = SqlQuery(DS, f"SELECT to_timestamp_nanos(ns) AS time, {LAT.name}, {LON.name} FROM (\n"
                         f"SELECT first_ns AS ns, first_lat AS {LAT.name}, first_lon AS {LON.name} FROM {source}\n"
                         "WHERE good > 0\nUNION ALL\n"
                         f"SELECT last_ns, last_lat, last_lon FROM {source}\nWHERE good > 0 AND last_ns > first_ns"
                         ") AS route\nORDER BY time", ref_id="A", fmt=TABLE)
    latest = SqlQuery(DS, f"SELECT to_timestamp_nanos(last_ns) AS time, {INDIVIDUAL}, {SPECIES}, "
                          f"last_lat AS {LAT.name}, last_lon AS {LON.name} FROM {source}\nWHERE good > 0\n"
                          "ORDER BY last_ns DESC LIMIT 1", ref_id="B", fmt=TABLE)
    outliers = SqlQuery(DS, f"SELECT to_timestamp_nanos(outlier_ns) AS time, outlier_lat AS {LAT.name}, "
                            f"outlier_lon AS {LON.name}, outliers FROM {source}\nWHERE placed > 0\nORDER BY time",
                        ref_id="C", fmt=TABLE)
    return (geomap.Panel().title("Track of ${individual}")
            .description("Route (fixes in time order, outliers left out), the latest position (large dot) and "
                         "the fixes marked as outliers or hidden in Movebank (red crosses). Over ranges longer than "
                         "two days the route joins each hour's (day's, week's) first and last fix, and a cross is "
                         "the newest outlier of its hour (day, week).")
            .datasource(DS.ref()).unit(grafana_unit(LAT.unit)).span(12).height(12)
            .repeat("individual").repeat_direction("h").max_per_row(2)
            .with_target(route).with_target(latest).with_target(outliers)
            .view(geomap.MapViewConfig().id("fit").all_layers(True).zoom(10).padding(10))
            .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_attribution(True)
                      .show_scale(True))
            .basemap(common_builders.MapLayerOptions().type("default").name("Basemap").config({}))
            .layers([
                _layer("route", "Route", "A", {"style": {"color": {"fixed": "blue"}, "lineWidth": 2, "opacity": 1,
                                                          "size": {"fixed": 2, "min": 1, "max": 8}}, "arrow": 0}),
                _layer("markers", "Latest position", "B", {"showLegend": False,
                                                           "style": _marker_style("green", 14, "circle")}),
                _layer("markers", "Outliers", "C", {"showLegend": False, "style": _marker_style("red", 9, "x-mark")}),
            ])
            .tooltip(geomap.TooltipOptions().mode(geomap_models.TooltipMode.DETAILS)))


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    degrees = grafana_unit(LAT.unit)
    built = (board(UID, "Bird movements",
                   "Movebank tracking data in InfluxDB 3 (bird_fixes): tracks, daily distance and speed, fixes "
                   "per individual and outliers. The default data set (O_ASSEN, 2018-2019) is historical: the "
                   "default range reaches 10 years back.", time=("now-10y", "now"), tags=["birds"])
             .with_variable(variable("species", "Species", DS,
                                     f"SELECT DISTINCT {SPECIES} FROM {tracks('true')} ORDER BY {SPECIES}"))
             .with_variable(variable("individual", "Individual", DS,
                                     f"SELECT DISTINCT {INDIVIDUAL} FROM {tracks(sql_in(SPECIES, 'species'))} "
                                     f"ORDER BY {INDIVIDUAL}", sort=dashboard.VariableSort.NATURAL_ASC))
             .with_row(dashboard_builders.Row("Overview"))
             .with_panel(stat_panel("Individuals", "Individuals with fixes in the range.", units.Short, DS, [
                 SqlQuery(DS, f"SELECT count(DISTINCT {INDIVIDUAL}) AS individuals FROM {tracks()}")],
                 field="individuals", width=6))
             .with_panel(stat_panel("Fixes", "GPS fixes in the range, outliers included.", units.Short, DS, [
                 SqlQuery(DS, f"SELECT coalesce(sum(fixes), 0) AS fixes FROM {tracks()}")], field="fixes", width=6))
             .with_panel(stat_panel("Outliers", "Fixes marked as outliers or hidden (visible=false) in Movebank; "
                                    "kept in the database, left out of routes, distances and speeds.", units.Short,
                                    DS, [SqlQuery(DS, "SELECT coalesce(sum(outliers), 0) AS outliers "
                                                      f"FROM {tracks()}")],
                                    field="outliers", steps=((None, "green"), (1, "orange")), width=6))
             .with_panel(stat_panel("Last fix", "Time of the newest fix in the range.", units.DateTimeFromNow, DS, [
                 SqlQuery(DS, f"SELECT max(newest_ns) / 1000000.0 AS last_fix FROM {tracks()}")], field="last_fix",
                 width=6, color_mode=common.BigValueColorMode.NONE))
             .with_row(dashboard_builders.Row("Tracks"))
             .with_panel(track_map())
             .with_row(dashboard_builders.Row("Movement"))
             .with_panel(time_series("Distance per day", "Great-circle distance between consecutive fixes, "
                                     "summed per UTC day and individual (outliers left out); over ranges longer "
                                     f"than {history.TIERS[-2].coarsest_up_to_s // 86_400} days a bar is a week's "
                                     "distance per day.", units.Kilometer, DS,
                                     [SqlQuery(DS, daily_movement("distance_km"), fmt=TIME_SERIES)], bars=True))
             .with_panel(time_series("Travel speed per day", "Distance per day divided by the time between the "
                                     "fixes of those legs.", units.KilometersPerHour, DS,
                                     [SqlQuery(DS, daily_movement("speed_kmh"), fmt=TIME_SERIES)]))
             .with_panel(bar_chart("Fixes per individual", "Fixes in the range per individual, and how many of "
                                   "them are outliers.", units.Short, DS, [
                                       SqlQuery(DS, f"SELECT {INDIVIDUAL}, sum(fixes) AS fixes, sum(outliers) AS "
                                                    f"outliers FROM {tracks()}\nGROUP BY {INDIVIDUAL} "
                                                    f"ORDER BY {INDIVIDUAL}")], x_field=INDIVIDUAL))
             .with_panel(table_panel("Outlier fixes", "The newest 500 fixes marked as outliers or hidden; over "
                                     "ranges longer than two days each row is the newest outlier of an hour (day, "
                                     "week) and `outliers` how many that bucket had (a row without a position is "
                                     "a bucket whose outliers had none).", units.NoUnit, DS, [
                                         SqlQuery(DS, "SELECT coalesce(to_timestamp_nanos(outlier_ns), time) AS time, "
                                                      f"{SPECIES}, {INDIVIDUAL}, outlier_lat AS {LAT.name}, "
                                                      f"outlier_lon AS {LON.name}, outliers FROM {tracks()}\n"
                                                      "WHERE outliers > 0\nORDER BY time DESC LIMIT 500")],
                                     width=12, overrides=[override(LAT.name, unit=degrees),
                                                          override(LON.name, unit=degrees)])))
    return finish(built.build())
