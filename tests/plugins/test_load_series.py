"""Loading a daily series over HTTP (request trigger) into peyton_views."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.plugins.conftest import daily_series, series_csv
from tests.support.paths import shared_file
from tests.support.recorder import RecordingServer, Reply

PLUGIN = "forecast/load_series"


def stored(engine, series="peyton_manning") -> pd.DataFrame:
    rows = engine.query("forecast", "SELECT time, y FROM peyton_views WHERE series = $s ORDER BY time",
                        {"s": series})
    return pd.DataFrame(rows, columns=["time", "y"])


def test_loads_over_http_and_a_reload_writes_only_what_changed(engine):
    """Core never compacts: every rewrite of a stored point adds Parquet files. A reload writes only new or changed
    days (the series gains a point a day; a correction changes one)."""
    frame = daily_series(120)
    served = {"csv": series_csv(frame)}
    with RecordingServer(lambda request: Reply(200, served["csv"], {"Content-Type": "text/csv"})) as server:
        args = {"url": f"{server.url}/example_wp_log_peyton_manning.csv"}
        first = engine.run_request(PLUGIN, "forecast", args=args).raise_for_error().response
        engine.snapshot()
        second = engine.run_request(PLUGIN, "forecast", args=args).raise_for_error()
        engine.snapshot()
        files = len(engine.parquet_files("forecast", "peyton_views"))
        grown = daily_series(121)
        grown.loc[5, "y"] += 1.0
        served["csv"] = series_csv(grown)
        third = engine.run_request(PLUGIN, "forecast", args=args).raise_for_error().response
        engine.snapshot()
        assert [r.path for r in server.requests] == ["/example_wp_log_peyton_manning.csv"] * 3
    assert first.status == 200 and first.content_type == "application/json"
    assert first.json()["status"] == "success" and first.json()["rows_written"] == 120
    assert (second.response.json()["rows_written"], second.response.json()["rows_unchanged"]) == (0, 120)
    assert second.writes == {}, "nothing already stored is written again"
    assert files == 120, "one file per day-window after the first load, none added by the reload"
    assert (third.json()["rows_written"], third.json()["rows_unchanged"]) == (2, 119)
    assert len(engine.parquet_files("forecast", "peyton_views")) == 122
    frame = grown
    table = stored(engine)
    assert len(table) == 121
    assert (table["time"].to_numpy() == frame["ds"].dt.as_unit("ns").astype("int64").to_numpy()).all()
    assert table["y"].to_numpy() == pytest.approx(frame["y"].to_numpy(), rel=1e-15)


def test_file_urls_paths_and_bad_rows(engine, tmp_path):
    frame = daily_series(30)
    text = series_csv(frame).replace(f'"{frame["ds"][3]:%Y-%m-%d}"', '"not a date"').replace(
        f',{float(frame["y"][7])!r}', ",NaN")
    text += '"2019-02-15",\n"2019-01-02",99.5\n'
    path = tmp_path / "series.csv"
    path.write_text(text)
    for url, written in ((path.as_uri(), 28), (str(path), 0)):  # the second load finds every day stored
        response = engine.run_request(PLUGIN, "forecast", args={"url": url, "series": "demo"}).response
        body = response.json()
        assert response.status == 200 and body["rows_written"] == written and body["rows_rejected"] == 3
        assert body["rows_unchanged"] == 28 - written and body["duplicate_days"] == 1
    table = stored(engine, "demo")
    assert len(table) == 28
    second_day = int(pd.Timestamp("2019-01-02").value)
    assert table.set_index("time").loc[second_day, "y"] == 99.5, "the last value of a repeated day wins"


@pytest.mark.parametrize(("content", "status"), [
    ("a,b\n1,2\n", 422),                # not a ds,y CSV
    ('"ds","y"\n"x","y"\n', 422),       # no usable row
])
def test_unusable_csv_is_refused_with_a_reason(engine, tmp_path, content, status):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    response = engine.run_request(PLUGIN, "forecast", args={"url": str(path)}).response
    assert response.status == status and response.json()["status"] == "error"
    assert engine.query("forecast", "SELECT table_name FROM information_schema.tables "
                                    "WHERE table_name = 'peyton_views'") == []


def test_unreachable_source_and_bad_arguments(engine):
    with RecordingServer(lambda request: Reply(404, "gone")) as server:
        response = engine.run_request(PLUGIN, "forecast", args={"url": f"{server.url}/x.csv"}).response
    assert response.status == 502 and "404" in response.json()["error"]
    response = engine.run_request(PLUGIN, "forecast", args={"url": "ftp://x/y.csv", "table": "bad-name"}).response
    assert response.status == 500
    assert "'url'" in response.json()["error"] and "'table'" in response.json()["error"]


def test_the_real_peyton_series(engine):
    path = shared_file("peyton_manning.csv")
    body = engine.run_request(PLUGIN, "forecast", args={"url": str(path)}).raise_for_error().response.json()
    assert body["rows_written"] == 2905 and body["rows_rejected"] == 0
    assert engine.query("forecast", "SELECT count(*) AS n FROM peyton_views")[0]["n"] == 2905
