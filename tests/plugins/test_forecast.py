"""The scheduled Prophet forecast, checked against a direct Prophet run on the same data."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from tests.plugins.conftest import daily_series, series_lines
from tests.support.lineprotocol import parse_lines

# Prophet 1.5 itself still calls DataFrame.drop(inplace=True), which pandas 3.1 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop")

PLUGIN = "forecast/prophet_forecast"
ARGS = {"horizon_days": "60", "holdout_days": "30", "seed": "3", "min_rows": "60"}


def direct_prophet(history: pd.DataFrame, future: pd.DataFrame | None, horizon: int, seed: int) -> pd.DataFrame:
    from prophet import Prophet

    model = Prophet(interval_width=0.8)
    model.fit(history[["ds", "y"]])
    if future is None:
        future = model.make_future_dataframe(periods=horizon, freq="D", include_history=False)
    np.random.seed(seed)
    return model.predict(future[["ds"]])


@pytest.mark.slow
def test_forecast_and_grade_match_a_direct_prophet_run(engine):
    history = daily_series(400)
    history["ds"] = history["ds"].dt.as_unit("ns")
    engine.write_lp("forecast", series_lines(history))
    run = engine.run_schedule(PLUGIN, "forecast", datetime(2024, 1, 1, 3), args=ARGS).raise_for_error()

    run_id = engine.query("forecast", "SELECT max(run) AS run FROM peyton_forecast")[0]["run"]
    assert run_id.startswith("2024-01-01T03:00:00Z-") and f"run={run_id}" in run.log_text()
    written = pd.DataFrame(engine.query(
        "forecast", "SELECT time, ds, yhat, yhat_lower, yhat_upper FROM peyton_forecast WHERE run = $r ORDER BY ds",
        {"r": run_id}))
    expected = direct_prophet(history, None, 60, 3)
    assert len(written) == 60
    assert (written["ds"].to_numpy() == expected["ds"].dt.as_unit("ns").astype("int64").to_numpy()).all()
    # Every row of the run is in the run's own second (start + index ns): one Parquet file per run.
    start = pd.Timestamp("2024-01-01T03:00:00").value
    assert written["time"].tolist() == [start + index for index in range(60)]
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        assert written[column].to_numpy() == pytest.approx(expected[column].to_numpy(), rel=1e-9), column
    for point in parse_lines("\n".join(run.writes["forecast"])):  # every written value is a finite number
        assert all(np.isfinite(v) for v in point.fields.values())

    cutoff = history["ds"].max() - pd.Timedelta(days=30)
    train, test = history[history["ds"] <= cutoff], history[history["ds"] > cutoff]
    predicted = direct_prophet(train, test, 0, 3)
    errors = np.abs(test["y"].to_numpy() - predicted["yhat"].to_numpy())
    inside = ((test["y"].to_numpy() >= predicted["yhat_lower"].to_numpy())
              & (test["y"].to_numpy() <= predicted["yhat_upper"].to_numpy()))
    grade = engine.query("forecast", "SELECT * FROM forecast_evaluation")[0]
    assert grade["run"] == run_id and grade["time"] == pd.Timestamp("2024-01-01T03:00:00").value
    assert grade["mae"] == pytest.approx(errors.mean(), rel=1e-9)
    assert grade["mape"] == pytest.approx((errors / np.abs(test["y"].to_numpy())).mean() * 100, rel=1e-9)
    assert grade["coverage"] == pytest.approx(inside.mean())
    assert (grade["holdout_days"], grade["train_rows"], grade["test_rows"]) == (30, 370, 30)


def test_too_little_data_logs_why_and_fits_nothing(engine):
    history = daily_series(20)
    engine.write_lp("forecast", [*series_lines(history), "peyton_views,series=peyton_manning other=1.0 1"])
    run = engine.run_schedule(PLUGIN, "forecast", args=ARGS).raise_for_error()
    warnings = run.messages("WARN")
    assert any("too little data" in m and "20 observations" in m for m in warnings)
    assert any("without a finite value" in m for m in warnings)
    assert not run.writes


def test_missing_series_and_bad_arguments(engine):
    run = engine.run_schedule(PLUGIN, "forecast", args={"horizon_days": "0", "interval_width": "2"})
    errors = run.raise_for_error().messages("ERROR")
    assert len(errors) == 1 and "'horizon_days'" in errors[0] and "'interval_width'" in errors[0]
    engine.write_lp("forecast", series_lines(daily_series(100), series="other"))
    run = engine.run_schedule(PLUGIN, "forecast", args=ARGS).raise_for_error()
    assert any("0 observations" in m for m in run.messages("WARN")) and not run.writes


@pytest.mark.slow
def test_forecast_now_over_http_writes_a_run_and_says_so(engine):
    history = daily_series(200)
    history["ds"] = history["ds"].dt.as_unit("ns")
    engine.write_lp("forecast", series_lines(history))
    args = {"horizon_days": "30", "holdout_days": "0", "seed": "3"}
    response = engine.run_request(PLUGIN, "forecast", args=args).raise_for_error().response
    body = response.json()
    assert response.status == 200 and response.content_type == "application/json"
    assert body["status"] == "success" and body["forecast_rows"] == 30 and body["graded"] is False
    assert body["observations"] == 200
    stored = engine.query("forecast", "SELECT count(*) AS n FROM peyton_forecast WHERE run = $r", {"r": body["run"]})
    assert stored[0]["n"] == 30


def test_forecast_now_with_too_little_data_fits_nothing_and_says_why(engine):
    history = daily_series(200).head(20)
    history["ds"] = history["ds"].dt.as_unit("ns")
    engine.write_lp("forecast", series_lines(history))
    response = engine.run_request(PLUGIN, "forecast", args={"min_rows": "60"}).response
    assert response.status == 422
    assert response.json()["status"] == "skipped" and "too little data" in response.json()["reason"]
    assert engine.query("forecast", "SELECT table_name FROM information_schema.tables "
                                    "WHERE table_name = 'peyton_forecast'") == []
