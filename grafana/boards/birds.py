"""Bird movements: tracks on a map, daily distance and speed, fixes per individual, outliers (bird_fixes)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.models import common, dashboard, units
from grafana_foundation_sdk.models import geomap as geomap_models

from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_TELEMETRY
from grafana.names import field, tag
from grafana.panels import (
    TIME_FILTER,
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

UID = "birds"
DS = SQL_TELEMETRY
TABLE_NAME = BIRD_FIXES.name
SPECIES, INDIVIDUAL = tag(BIRD_FIXES, "species"), tag(BIRD_FIXES, "individual")
LAT, LON = field(BIRD_FIXES, "lat"), field(BIRD_FIXES, "lon")
VISIBLE, OUTLIER = field(BIRD_FIXES, "visible").name, field(BIRD_FIXES, "outlier").name
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

# A fix is an outlier when Movebank marks it (manually or on import) or hides it (visible=false).
IS_OUTLIER = f"(coalesce({OUTLIER}, false) OR NOT coalesce({VISIBLE}, true))"
SELECTED = f"{TIME_FILTER} AND {sql_in(SPECIES, 'species')} AND {sql_in(INDIVIDUAL, 'individual')}"


def haversine_km(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """Great-circle distance in km between two points given in degrees (SQL expression)."""
    return (f"2 * {EARTH_RADIUS_KM} * asin(sqrt(power(sin(radians({lat2} - {lat1}) / 2), 2) + "
            f"cos(radians({lat1})) * cos(radians({lat2})) * power(sin(radians({lon2} - {lon1}) / 2), 2)))")


def daily_movement(value: str) -> str:
    """Per individual and UTC day: km flown between consecutive fixes (outliers left out) and km/h over the
    time those legs took. `value` is the column the panel shows: distance_km or speed_kmh."""
    window = f"OVER (PARTITION BY {INDIVIDUAL} ORDER BY time)"
    legs = (f"SELECT time, {INDIVIDUAL}, {haversine_km('prev_lat', 'prev_lon', LAT.name, LON.name)} AS km, "
            "(date_part('epoch', time) - date_part('epoch', prev_time)) / 3600.0 AS hours "
            f"FROM (SELECT time, {INDIVIDUAL}, {LAT.name}, {LON.name}, lag({LAT.name}) {window} AS prev_lat, "
            f"lag({LON.name}) {window} AS prev_lon, lag(time) {window} AS prev_time "
            f"FROM {TABLE_NAME} WHERE {SELECTED} AND NOT {IS_OUTLIER}) AS fixes WHERE prev_time IS NOT NULL")
    measures = {"distance_km": "sum(km)", "speed_kmh": "sum(km) / nullif(sum(hours), 0)"}
    return (f"SELECT date_bin(interval '1 day', time, timestamp '1970-01-01T00:00:00Z') AS time, {INDIVIDUAL}, "
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
    where = f"{TIME_FILTER} AND {sql_in(INDIVIDUAL, 'individual')}"
    route = SqlQuery(DS, f"SELECT time, {LAT.name}, {LON.name} FROM {TABLE_NAME}\nWHERE {where} AND NOT {IS_OUTLIER}\n"
                         "ORDER BY time", ref_id="A", fmt=TABLE)
    latest = SqlQuery(DS, f"SELECT time, {INDIVIDUAL}, {SPECIES}, {LAT.name}, {LON.name} FROM {TABLE_NAME}\n"
                          f"WHERE {where} AND NOT {IS_OUTLIER}\nORDER BY time DESC LIMIT 1", ref_id="B", fmt=TABLE)
    outliers = SqlQuery(DS, f"SELECT time, {LAT.name}, {LON.name}, {OUTLIER}, {VISIBLE} FROM {TABLE_NAME}\n"
                            f"WHERE {where} AND {IS_OUTLIER}\nORDER BY time", ref_id="C", fmt=TABLE)
    return (geomap.Panel().title("Track of ${individual}")
            .description("Route (fixes in time order, outliers left out), the latest position (large dot) and "
                         "the fixes marked as outliers or hidden in Movebank (red crosses).")
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
                                     f"SELECT DISTINCT {SPECIES} FROM {TABLE_NAME} WHERE {TIME_FILTER} "
                                     f"ORDER BY {SPECIES}"))
             .with_variable(variable("individual", "Individual", DS,
                                     f"SELECT DISTINCT {INDIVIDUAL} FROM {TABLE_NAME} WHERE {TIME_FILTER} AND "
                                     f"{sql_in(SPECIES, 'species')} ORDER BY {INDIVIDUAL}",
                                     sort=dashboard.VariableSort.NATURAL_ASC))
             .with_row(dashboard_builders.Row("Overview"))
             .with_panel(stat_panel("Individuals", "Individuals with fixes in the range.", units.Short, DS, [
                 SqlQuery(DS, f"SELECT count(DISTINCT {INDIVIDUAL}) AS individuals FROM {TABLE_NAME} "
                              f"WHERE {SELECTED}")], field="individuals", width=6))
             .with_panel(stat_panel("Fixes", "GPS fixes in the range, outliers included.", units.Short, DS, [
                 SqlQuery(DS, f"SELECT count(*) AS fixes FROM {TABLE_NAME} WHERE {SELECTED}")],
                 field="fixes", width=6))
             .with_panel(stat_panel("Outliers", "Fixes marked as outliers or hidden (visible=false) in Movebank; "
                                    "kept in the database, left out of routes, distances and speeds.", units.Short,
                                    DS, [SqlQuery(DS, f"SELECT count(*) AS outliers FROM {TABLE_NAME} "
                                                      f"WHERE {SELECTED} AND {IS_OUTLIER}")],
                                    field="outliers", steps=((None, "green"), (1, "orange")), width=6))
             .with_panel(stat_panel("Last fix", "Time of the newest fix in the range.", units.DateTimeFromNow, DS, [
                 SqlQuery(DS, f"SELECT date_part('epoch', max(time)) * 1000 AS last_fix FROM {TABLE_NAME} "
                              f"WHERE {SELECTED}")], field="last_fix", width=6,
                 color_mode=common.BigValueColorMode.NONE))
             .with_row(dashboard_builders.Row("Tracks"))
             .with_panel(track_map())
             .with_row(dashboard_builders.Row("Movement"))
             .with_panel(time_series("Distance per day", "Great-circle distance between consecutive fixes, "
                                     "summed per UTC day and individual (outliers left out).", units.Kilometer, DS,
                                     [SqlQuery(DS, daily_movement("distance_km"), fmt=TIME_SERIES)], bars=True))
             .with_panel(time_series("Travel speed per day", "Distance per day divided by the time between the "
                                     "fixes of those legs.", units.KilometersPerHour, DS,
                                     [SqlQuery(DS, daily_movement("speed_kmh"), fmt=TIME_SERIES)]))
             .with_panel(bar_chart("Fixes per individual", "Fixes in the range per individual, and how many of "
                                   "them are outliers.", units.Short, DS, [
                                       SqlQuery(DS, f"SELECT {INDIVIDUAL}, count(*) AS fixes, "
                                                    f"sum(CASE WHEN {IS_OUTLIER} THEN 1 ELSE 0 END) AS outliers "
                                                    f"FROM {TABLE_NAME} WHERE {SELECTED}\nGROUP BY {INDIVIDUAL} "
                                                    f"ORDER BY {INDIVIDUAL}")], x_field=INDIVIDUAL))
             .with_panel(table_panel("Outlier fixes", "The newest 500 fixes marked as outliers or hidden.",
                                     units.NoUnit, DS, [
                                         SqlQuery(DS, f"SELECT time, {SPECIES}, {INDIVIDUAL}, {LAT.name}, {LON.name}, "
                                                      f"{OUTLIER}, {VISIBLE} FROM {TABLE_NAME}\nWHERE {SELECTED} AND "
                                                      f"{IS_OUTLIER}\nORDER BY time DESC LIMIT 500")],
                                     width=12, overrides=[override(LAT.name, unit=degrees),
                                                          override(LON.name, unit=degrees)])))
    return finish(built.build())
