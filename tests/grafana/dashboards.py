"""The generated dashboards as Grafana reads them (parsed JSON), and walks over their panels and queries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from common.retention import LIVE_RANGE
from grafana import datasources
from grafana.generate import generated
from tests.grafana.expand import TimeRange, interpolate, resolve_time

__all__ = [
    "Query", "Variable", "boards", "database_at", "datasource", "panel_range", "panels", "queries",
    "referenced_columns", "repeat_scopes", "resolve", "selection_for", "sort_options", "variables",
]


@cache
def _boards() -> dict[str, str]:
    return generated()


def boards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON, freshly parsed (callers may modify it)."""
    return {name.removesuffix(".json"): json.loads(text) for name, text in _boards().items()}


def datasource(ref: dict[str, Any]) -> datasources.Datasource:
    """The declared datasource a JSON ref names (a `stored()` one included); KeyError for anything else."""
    for item in (*datasources.ALL, *datasources.STORED):
        if ref == {"type": datasources.PLUGIN_TYPE, "uid": item.uid}:
            return item
    raise KeyError(f"not a provisioned datasource of this stack: {ref}")


def database_at(source: datasources.Datasource, time_range: TimeRange, now: datetime) -> str | None:
    """The database a query of `source` reads over `time_range`: for a `stored()` datasource, what its hidden
    variable picks (grafana/panels.py `store_query`: history once the range starts more than LIVE_RANGE ago)."""
    if source.variable is None or time_range.start >= now - LIVE_RANGE:
        return source.database
    return datasources.SQL_HISTORY.database


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and panels inside collapsed rows included."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", []) or []


@dataclass
class Variable:
    name: str
    query: str
    datasource: datasources.Datasource
    multi: bool
    include_all: bool
    current: list[str] | None
    raw: dict[str, Any]


def variables(board: dict[str, Any]) -> list[Variable]:
    found = []
    for item in board.get("templating", {}).get("list", []):
        query = item["query"]["query"] if isinstance(item.get("query"), dict) else item.get("query", "")
        current = item.get("current", {}).get("value")
        if isinstance(current, str):
            current = [current]
        if current == ["$__all"]:
            current = None
        found.append(Variable(item["name"], query, datasource(item["datasource"]), bool(item.get("multi")),
                              bool(item.get("includeAll")), current, item))
    return found


@dataclass
class Query:
    board: str
    panel: dict[str, Any]
    target: dict[str, Any]
    datasource: datasources.Datasource

    @property
    def text(self) -> str:
        return self.target.get("rawSql") or self.target.get("query") or ""

    @property
    def is_sql(self) -> bool:
        return self.datasource.language == datasources.SQL_LANGUAGE

    @property
    def label(self) -> str:
        return f"{self.board}: panel {self.panel.get('id')} {self.panel.get('title')!r} query {self.target['refId']}"


def queries(board: dict[str, Any], uid: str) -> list[Query]:
    return [Query(uid, panel, target, datasource(target["datasource"]))
            for panel in panels(board) for target in panel.get("targets", [])]


def panel_range(board: dict[str, Any], panel: dict[str, Any], now: datetime) -> TimeRange:
    """The range a panel queries: the dashboard's default, or the panel's relative override (timeFrom)."""
    if panel.get("timeFrom"):
        amount = re.fullmatch(r"(\d+[smhdwMy])", panel["timeFrom"])
        if not amount:
            raise ValueError(f"panel {panel.get('title')!r}: unsupported timeFrom {panel['timeFrom']!r}")
        return TimeRange(resolve_time(f"now-{amount.group(1)}", now), now)
    return TimeRange(resolve_time(board["time"]["from"], now), resolve_time(board["time"]["to"], now))


def repeat_scopes(board: dict[str, Any]) -> dict[int, str]:
    """Panel id -> the variable it repeats over: its own `repeat`, or that of the repeated row it sits under."""
    scopes: dict[int, str] = {}
    row_repeat: str | None = None
    for panel in board.get("panels", []):
        if panel["type"] == "row":
            row_repeat = panel.get("repeat") or None
            for inner in panel.get("panels", []) or []:
                if inner.get("repeat") or row_repeat:
                    scopes[inner["id"]] = inner.get("repeat") or row_repeat
            continue
        if panel.get("repeat") or row_repeat:
            scopes[panel["id"]] = panel.get("repeat") or row_repeat
    return scopes


def referenced_columns(panel: dict[str, Any]) -> dict[str | None, set[str]]:
    """Columns the panel's configuration names, by the refId of the query that must return them (None: any of
    the panel's queries): field overrides and fill-between partners, stat fields, bar chart axes, map coordinates."""
    wanted: dict[str | None, set[str]] = {}
    for item in panel.get("fieldConfig", {}).get("overrides", []):
        if item["matcher"]["id"] == "byName":
            wanted.setdefault(None, set()).add(item["matcher"]["options"])
        for prop in item.get("properties", []):
            if prop["id"] == "custom.fillBelowTo":
                wanted.setdefault(None, set()).add(prop["value"])
    options = panel.get("options", {}) or {}
    stat_fields = (options.get("reduceOptions") or {}).get("fields") or ""
    exact = re.fullmatch(r"/\^(\w+)\$/", stat_fields)
    if exact:
        wanted.setdefault(None, set()).add(exact.group(1))
    if panel["type"] == "barchart" and options.get("xField"):
        wanted.setdefault(None, set()).add(options["xField"])
    for layer in options.get("layers", []) if panel["type"] == "geomap" else []:
        location = layer.get("location") or {}
        ref = (layer.get("filterData") or {}).get("options")
        for key in ("latitude", "longitude"):
            if location.get(key):
                wanted.setdefault(ref, set()).add(location[key])
    return wanted


OptionsOf = Callable[[Variable, str, TimeRange], list[str]]


def _natural(value: str) -> list[object]:
    parts = [part for part in re.split(r"(\d+)", value) if part]
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in parts]


def sort_options(values: list[str], sort: int) -> list[str]:
    """A variable's options in the order Grafana lists them (VariableSort: 0 as the query returns them,
    1/2 alphabetical, 3/4 numerical, 5/6 alphabetical ignoring case, 7/8 natural; even numbers descending)."""
    if sort == 0:
        return list(values)
    keys = {1: str, 3: lambda v: float(re.search(r"-?\d+(\.\d+)?", v).group(0)) if re.search(r"\d", v) else 0.0,
            5: str.lower, 7: _natural}
    key = keys[sort - 1 if sort % 2 == 0 else sort]
    return sorted(values, key=key, reverse=sort % 2 == 0)


def resolve(board: dict[str, Any], now: datetime, options_of: OptionsOf) -> tuple[dict[str, list[str]],
                                                                                   dict[str, list[str]]]:
    """Every variable's options and selection, in dashboard order, each query interpolated with the selections
    before it (as Grafana refreshes chained variables): `options_of(variable, query text, range)` runs a query.
    The selection is what a user sees on first load: the saved current value when it is an option, All for
    multi-value variables with All, else the first option."""
    time_range = TimeRange(resolve_time(board["time"]["from"], now), resolve_time(board["time"]["to"], now))
    selected: dict[str, list[str]] = {}
    options: dict[str, list[str]] = {}
    for item in variables(board):
        found = sort_options(options_of(item, interpolate(item.query, selected), time_range),
                             int(item.raw.get("sort") or 0))
        options[item.name] = found
        if item.current:
            chosen = [value for value in item.current if value in found] or found[:1]
        elif item.multi and item.include_all:
            chosen = list(found)
        else:
            chosen = found[:1]
        selected[item.name] = chosen
    return selected, options


def selection_for(panel: dict[str, Any], scopes: dict[int, str], selected: dict[str, list[str]],
                  options: dict[str, list[str]]) -> dict[str, list[str]]:
    """The variable values one panel queries with: a repeated panel's first copy gets the first repeat value."""
    name = scopes.get(panel.get("id", -1))
    if name is None:
        return selected
    return {**selected, name: (selected.get(name) or options.get(name) or [])[:1]}
