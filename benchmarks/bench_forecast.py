"""Fit-and-predict time for the 2,905-row Peyton Manning series (shared data set).

Baseline: Prophet directly on the CSV (fit, then predict 365 days). Measured: the prophet_forecast plugin on
the local engine doing the same job (read the series back with SQL, fit, predict, write 365 rows), without
and with its 30-day holdout grading (a second fit). Each figure is the median of a few runs; the last line is
the plugin's time over the direct baseline (1.0 would mean no overhead).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.engine import LocalEngine  # noqa: E402
from tests.support.paths import SHARED_DATA  # noqa: E402

RUNS = 3


def direct(history: pd.DataFrame) -> float:
    from prophet import Prophet

    started = time.perf_counter()
    model = Prophet()
    model.fit(history)
    model.predict(model.make_future_dataframe(periods=365, include_history=False))
    return time.perf_counter() - started


def main() -> None:
    path = SHARED_DATA / "peyton_manning.csv"
    if not path.is_file():
        print(f"skipped: {path} not found (set SHARED_DIR)")
        return
    import logging

    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    history = pd.read_csv(path)
    history["ds"] = pd.to_datetime(history["ds"])
    engine = LocalEngine()
    engine.run_request("forecast/load_series", "forecast", args={"url": str(path)}).raise_for_error()
    direct(history)  # warm-up: imports and cmdstan's first start
    baseline = statistics.median(direct(history) for _ in range(RUNS))
    plugin = {}
    for holdout in ("0", "30"):
        times = []
        for index in range(RUNS):
            run = engine.run_schedule("forecast/prophet_forecast", "forecast", datetime(2024, 1, 1, 3, 0, index),
                                      args={"holdout_days": holdout}).raise_for_error()
            times.append(run.seconds)
        plugin[holdout] = statistics.median(times)
    print(f"rows: {len(history)}; horizon 365 days; median of {RUNS} runs")
    print(f"direct Prophet fit+predict:            {baseline:.2f} s")
    print(f"plugin run, no holdout grading:        {plugin['0']:.2f} s")
    print(f"plugin run, 30-day holdout (2 fits):   {plugin['30']:.2f} s")
    print(f"ratio plugin (no grading) / direct Prophet: {plugin['0'] / baseline:.2f}")


if __name__ == "__main__":
    main()
