"""Building blocks shared by the dashboards: the dashboard frame, variables, panels with units and thresholds.

Conventions every dashboard follows (the tests check them on the generated JSON):
- every panel and variable names a provisioned datasource by uid (`grafana.datasources`), never `${DS_...}`;
- every panel has a unit; thresholds are absolute steps;
- template variables are referenced with an explicit format (`${name:sqlstring}` in SQL, `${name:regex}` in
  Flux, `${name:raw}` for identifiers), so the text Grafana substitutes does not depend on the datasource's
  default formatting, which has changed between Grafana versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from grafana_foundation_sdk.builders import barchart, bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common, dashboard

from common.retention import LIVE_RANGE
from grafana.datasources import SQL_HISTORY, Datasource, stored
from grafana.queries import InfluxQuery

__all__ = [
    "DATE_BIN", "FOLDER_TAG", "TIME_FILTER", "Step", "bar_chart", "bar_gauge", "board", "finish", "override",
    "sql_in", "stat_panel", "store_query", "store_variable", "table_panel", "thresholds", "time_series", "variable",
]

# Every dashboard carries this tag; the dashboard links list the others by it.
FOLDER_TAG = "influx-stack"
TIME_FILTER = "$__timeFilter(time)"
DATE_BIN = "$__dateBin(time)"

Step = tuple[float | None, str]


def board(uid: str, title: str, description: str, *, time: tuple[str, str], refresh: str | None = None,
          tags: Iterable[str] = ()) -> dashboard_builders.Dashboard:
    """A read-only dashboard (provisioned: edits belong in the Python) with links to its siblings."""
    built = (dashboard_builders.Dashboard(title).uid(uid).description(description).tags([FOLDER_TAG, *tags])
             .readonly().time(time[0], time[1]).timezone("browser")
             .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
             .link(dashboard_builders.DashboardLink("Stack dashboards").type(dashboard.DashboardLinkType.DASHBOARDS)
                   .tags([FOLDER_TAG]).as_dropdown(True).include_vars(False).keep_time(False).icon("external link")
                   .tooltip("").url("").target_blank(False)))
    if refresh:
        built = built.refresh(refresh)
    return built


def variable(name: str, label: str, datasource: Datasource, query: str, *, multi: bool = True,
             include_all: bool = True, sort: dashboard.VariableSort = dashboard.VariableSort.ALPHABETICAL_ASC,
             refresh: dashboard.VariableRefresh = dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED,
             current: str | None = None, description: str = "") -> dashboard_builders.QueryVariable:
    """A query variable. The query is saved as the InfluxDB datasource's variable model ({query, refId})."""
    built = (dashboard_builders.QueryVariable(name).label(label).description(description)
             .datasource(datasource.ref()).query({"query": query.strip(), "refId": f"{name}-variable"})
             .multi(multi).include_all(include_all).allow_custom_value(False).sort(sort).refresh(refresh))
    if current is not None:
        built = built.current(dashboard.VariableOption(selected=True, text=current, value=current))
    elif include_all:
        built = built.current(dashboard.VariableOption(selected=True, text=["All"], value=["$__all"]))
    return built


def store_query(live: Datasource) -> str:
    """The uid of the datasource a range reads: `live`'s while the range starts within LIVE_RANGE of now (what the
    live database still holds: raw rows and rollups for RAW_RETENTION, at least LIVE_RANGE and a day), else
    history's (the rollups, copied there, beside what history loads put there). A constant the server folds at once."""
    return (f"SELECT CASE WHEN $__timeFrom() >= now() - INTERVAL '{int(LIVE_RANGE.total_seconds())} seconds' "
            f"THEN '{live.uid}' ELSE '{SQL_HISTORY.uid}' END AS store")


def store_variable(live: Datasource) -> dashboard_builders.QueryVariable:
    """The hidden variable `stored(live)` names, asked of the live database whenever the range changes."""
    name = stored(live).variable or ""
    return (variable(name, "Store", live, store_query(live), multi=False, include_all=False, current=live.uid,
                     description=f"{live.database} for ranges starting within {LIVE_RANGE.days} days, "
                                 f"{SQL_HISTORY.database} beyond (its raw retention, RAW_RETENTION)")
            .hide(dashboard.VariableHide.HIDE_VARIABLE))


def sql_in(column: str, variable_name: str) -> str:
    """`column IN ('a','b')`: Grafana's sqlstring format quotes each selected value and doubles its quotes."""
    return f"{column} IN (${{{variable_name}:sqlstring}})"


def thresholds(*steps: Step) -> dashboard_builders.ThresholdsConfig:
    """Absolute threshold steps; the first step's value is None (the base colour)."""
    if not steps or steps[0][0] is not None:
        raise ValueError("the first threshold step is the base: (None, colour)")
    values = [value for value, _ in steps[1:]]
    if values != sorted(values):
        raise ValueError(f"threshold values must ascend: {values}")
    return (dashboard_builders.ThresholdsConfig().mode(dashboard.ThresholdsMode.ABSOLUTE)
            .steps([dashboard.Threshold(value=value, color=color) for value, color in steps]))


def override(name: str, **properties: object) -> tuple[str, list[dashboard.DynamicConfigValue]]:
    """Field overrides by field name, e.g. override("upper", **{"custom.fillBelowTo": "lower"})."""
    return name, [dashboard.DynamicConfigValue(id_val=key, value=value) for key, value in properties.items()]


def _apply(panel: cogbuilder.Builder, title: str, description: str, unit: str, targets: Sequence[InfluxQuery],
           datasource: Datasource, width: int, height: int,
           overrides: Sequence[tuple[str, list[dashboard.DynamicConfigValue]]] = ()) -> cogbuilder.Builder:
    panel = (panel.title(title).description(description).unit(unit).datasource(datasource.ref())
             .span(width).height(height))
    for target in targets:
        panel = panel.with_target(target)
    for name, properties in overrides:
        panel = panel.override_by_name(name, properties)
    return panel


def stat_panel(title: str, description: str, unit: str, datasource: Datasource, targets: Sequence,
               *, field: str | None = None, steps: Sequence[Step] = ((None, "green"),), calc: str = "lastNotNull",
               width: int = 4, height: int = 4, mappings: Sequence[dashboard.ValueMapping] = (),
               color_mode: common.BigValueColorMode = common.BigValueColorMode.VALUE) -> stat.Panel:
    """A single number; `field` picks the column by exact name (else every numeric column)."""
    reduce = common_builders.ReduceDataOptions().calcs([calc]).values(False)
    if field is not None:
        reduce = reduce.fields(f"/^{field}$/")
    panel = (stat.Panel().reduce_options(reduce).graph_mode(common.BigValueGraphMode.NONE).color_mode(color_mode)
             .text_mode(common.BigValueTextMode.AUTO).thresholds(thresholds(*steps)))
    if mappings:
        panel = panel.mappings(list(mappings))
    return _apply(panel, title, description, unit, targets, datasource, width, height)


def time_series(title: str, description: str, unit: str, datasource: Datasource, targets: Sequence, *,
                width: int = 12, height: int = 8, bars: bool = False, steps: Sequence[Step] | None = None,
                overrides: Sequence[tuple[str, list[dashboard.DynamicConfigValue]]] = (),
                min_interval: str | None = None, fill: int = 10) -> timeseries.Panel:
    """Lines (or bars) over time; with `steps`, the thresholds are drawn as lines and areas."""
    panel = (timeseries.Panel().draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
             .line_width(1).fill_opacity(80 if bars else fill).show_points(common.VisibilityMode.NEVER)
             .span_nulls(False)
             .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True))
             .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.DESCENDING)))
    if steps is not None:
        panel = panel.thresholds(thresholds(*steps)).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE_AND_AREA))
    if min_interval is not None:
        panel = panel.interval(min_interval)
    return _apply(panel, title, description, unit, targets, datasource, width, height, overrides)


def table_panel(title: str, description: str, unit: str, datasource: Datasource, targets: Sequence, *,
                width: int = 24, height: int = 8,
                overrides: Sequence[tuple[str, list[dashboard.DynamicConfigValue]]] = ()) -> table.Panel:
    panel = (table.Panel().show_header(True).cell_height(common.TableCellHeight.SM)
             .align(common.FieldTextAlignment.AUTO).inspect(False))
    return _apply(panel, title, description, unit, targets, datasource, width, height, overrides)


def bar_gauge(title: str, description: str, unit: str, datasource: Datasource, targets: Sequence, *,
              rows: bool, width: int = 12, height: int = 6, display_name: str | None = None) -> bargauge.Panel:
    """Horizontal bars: one per table row (`rows`, named by the row's string columns) or one per frame."""
    panel = (bargauge.Panel().orientation(common.VizOrientation.HORIZONTAL)
             .display_mode(common.BarGaugeDisplayMode.GRADIENT)
             .reduce_options(common_builders.ReduceDataOptions().values(rows).calcs(["lastNotNull"]))
             .thresholds(thresholds((None, "green"))))
    if display_name is not None:
        panel = panel.display_name(display_name)
    return _apply(panel, title, description, unit, targets, datasource, width, height)


def bar_chart(title: str, description: str, unit: str, datasource: Datasource, targets: Sequence, *,
              x_field: str, width: int = 12, height: int = 8) -> barchart.Panel:
    """Categorical bars from a table: `x_field` (a string column) on the axis, one bar per numeric column."""
    panel = (barchart.Panel().x_field(x_field).orientation(common.VizOrientation.AUTO)
             .show_value(common.VisibilityMode.AUTO).fill_opacity(80)
             .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True)))
    return _apply(panel, title, description, unit, targets, datasource, width, height)


def finish(built: dashboard.Dashboard) -> dashboard.Dashboard:
    """Stable panel ids in layout order (rows included), so links and `viewPanel=` survive regeneration, and
    grid positions that flow left to right and wrap before a panel would cross the 24-column edge (the
    SDK's own placement only wraps after a row is already over-full)."""
    x = y = line = 0
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
        grid = panel.grid_pos
        if isinstance(panel, dashboard.RowPanel):
            y, x, line = y + line, 0, 0
            grid.x, grid.y, grid.w, grid.h = 0, y, 24, 1
            y += 1
            continue
        if x + grid.w > 24:
            y, x, line = y + line, 0, 0
        grid.x, grid.y = x, y
        x += grid.w
        line = max(line, grid.h)
    for link in built.links or []:
        # grafana-foundation-sdk 0.0.21's DashboardLink sets placement "inControlsMenu" and its builder cannot unset
        # it; Grafana 12.4 would then hide the link in the controls menu instead of the dashboard's header.
        link.placement = None
    return built
