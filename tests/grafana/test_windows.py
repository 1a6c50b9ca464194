"""Every SQL window the stack sends partitions by expressions, never by a bare column (plugins/stacklib/windows.py:
on Core 3.6.0 a window partitioned by a tag column failed at execution, "Expects PARTITION BY expression to be
ordered"). The dashboards and alert rules as provisioned, the track summaries' SQL and the analytics API's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from plugins.stacklib.tracks import fix_columns, summary_sql
from plugins.stacklib.windows import over
from tests.grafana.dashboards import boards, queries
from tests.support.paths import REPO

PARTITION = re.compile(r"PARTITION BY (.*?) ORDER BY", re.DOTALL)
BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\"[^\"]+\"")


def _keys(clause: str) -> list[str]:
    """The comma-separated keys of a PARTITION BY clause (commas inside parentheses belong to a key)."""
    keys, depth, current = [], 0, ""
    for char in clause:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            keys.append(current.strip())
            current = ""
        else:
            current += char
    return [*keys, current.strip()]


def bare_keys(sql: str) -> list[str]:
    return [key for clause in PARTITION.findall(sql) for key in _keys(clause) if BARE.fullmatch(key)]


def test_the_check_tells_a_column_from_an_expression():
    assert bare_keys("lag(x) OVER (PARTITION BY individual, concat(tag, '') ORDER BY time)") == ["individual"]
    assert bare_keys(f"lag(x) {over('individual', expressions=('date_bin(a, b, c)',))}") == []


def _dashboard_sql() -> list[tuple[str, str]]:
    return [(f"{uid}: {query.label}", query.text) for uid, board in boards().items()
            for query in queries(board, uid)]


def _alert_sql() -> list[tuple[str, str]]:
    rules = yaml.safe_load((REPO / "grafana" / "provisioning" / "alerting" / "rules.yaml").read_text())
    return [(rule["title"], str(item["model"].get("rawSql") or item["model"].get("query") or ""))
            for group in rules["groups"] for rule in group["rules"] for item in rule["data"]]


@pytest.mark.parametrize("source", ["dashboards", "alert rules"])
def test_provisioned_windows_partition_by_expressions(source: str):
    found = _dashboard_sql() if source == "dashboards" else _alert_sql()
    windows = [(name, sql) for name, sql in found if "PARTITION BY" in sql]
    assert windows, f"no window in the {source}: the check reads the wrong field"
    assert [(name, bare) for name, sql in windows if (bare := bare_keys(sql))] == []


def test_plugin_windows_partition_by_expressions():
    tracks = summary_sql(f"SELECT time, individual, {', '.join(fix_columns())} FROM bird_fixes",
                         "date_bin(INTERVAL '1 hour', time, TIMESTAMP '1970-01-01T00:00:00Z')", ["individual"])
    assert "PARTITION BY" in tracks and bare_keys(tracks) == []
    for path in Path(REPO / "plugins").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "PARTITION BY" not in text or path.name == "windows.py", \
            f"{path.relative_to(REPO)} writes a window by hand: build it with stacklib.windows.over"
