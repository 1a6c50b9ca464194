"""Prophet on a daily series: fit, forecast H days ahead, and grade a model on the last K days held out.

Pure functions over pandas frames (`ds` naive UTC datetimes, `y` floats), so the plugins stay thin and the
tests can compare with a direct Prophet run. Prophet's uncertainty intervals are Monte Carlo samples drawn
from NumPy's global generator: pass `seed` for reproducible intervals (it reseeds that global generator).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Evaluation", "evaluate_holdout", "fit_predict", "frame_from_rows"]

# cmdstanpy logs two INFO lines per fit to stderr; inside the database server they are noise. It configures
# its logger (DEBUG, plus a stderr handler) only when the logger has no handler yet: give it one first.
_CMDSTANPY_LOG = logging.getLogger("cmdstanpy")
_CMDSTANPY_LOG.addHandler(logging.NullHandler())
_CMDSTANPY_LOG.setLevel(logging.WARNING)


@dataclass(frozen=True)
class Evaluation:
    mae: float
    mape: float | None  # None when every held-out actual is 0
    coverage: float
    holdout_days: int
    train_rows: int
    test_rows: int
    fit_seconds: float

    def as_fields(self) -> dict[str, float | int]:
        fields: dict[str, float | int] = {
            "mae": self.mae, "coverage": self.coverage, "holdout_days": self.holdout_days,
            "train_rows": self.train_rows, "test_rows": self.test_rows, "fit_seconds": self.fit_seconds}
        if self.mape is not None:
            fields["mape"] = self.mape
        return fields


def frame_from_rows(rows: Iterable[Mapping[str, Any]], value: str = "y") -> tuple[pd.DataFrame, int]:
    """(ds, y) sorted by ds from query rows (`time` in ns); also how many rows were not finite numbers."""
    times, values, dropped = [], [], 0
    for row in rows:
        number = row.get(value)
        stamp = row.get("time")
        if (not isinstance(number, int | float) or isinstance(number, bool) or not math.isfinite(number)
                or not isinstance(stamp, int)):
            dropped += 1
            continue
        times.append(stamp)
        values.append(float(number))
    frame = pd.DataFrame({"ds": pd.to_datetime(np.asarray(times, dtype=np.int64), unit="ns"),
                          "y": np.asarray(values, dtype=np.float64)})
    frame = frame.drop_duplicates("ds", keep="last").sort_values("ds", ignore_index=True)
    return frame, dropped


def _model(interval_width: float):
    from prophet import Prophet  # imported here: ~1 s, only the forecasting plugins pay for it

    return Prophet(interval_width=interval_width)


def fit_predict(history: pd.DataFrame, horizon_days: int, interval_width: float = 0.8,
                seed: int | None = None, future: pd.DataFrame | None = None) -> pd.DataFrame:
    """Fit on `history` and predict `future` (default: the `horizon_days` days after the last ds).

    Returns ds, yhat, yhat_lower, yhat_upper.
    """
    model = _model(interval_width)
    model.fit(history[["ds", "y"]])
    if future is None:
        future = model.make_future_dataframe(periods=horizon_days, freq="D", include_history=False)
    if seed is not None:
        np.random.seed(seed)
    forecast = model.predict(future[["ds"]])
    return forecast[["ds", "yhat", "yhat_lower", "yhat_upper"]]


def evaluate_holdout(history: pd.DataFrame, holdout_days: int, min_train_rows: int, interval_width: float = 0.8,
                     seed: int | None = None) -> Evaluation | str:
    """Fit on all but the last `holdout_days` days, score the prediction of those days; or why it can't."""
    cutoff = history["ds"].max() - pd.Timedelta(days=holdout_days)
    train, test = history[history["ds"] <= cutoff], history[history["ds"] > cutoff]
    if len(train) < min_train_rows:
        return f"only {len(train)} rows before the {holdout_days}-day holdout (need {min_train_rows})"
    if test.empty:
        return f"no observation in the last {holdout_days} days to grade against"
    started = time.perf_counter()
    predicted = fit_predict(train, 0, interval_width, seed, future=test[["ds"]])
    seconds = time.perf_counter() - started
    actual = test["y"].to_numpy()
    yhat = predicted["yhat"].to_numpy()
    errors = np.abs(actual - yhat)
    nonzero = actual != 0
    mape = float(np.mean(errors[nonzero] / np.abs(actual[nonzero])) * 100) if nonzero.any() else None
    inside = (actual >= predicted["yhat_lower"].to_numpy()) & (actual <= predicted["yhat_upper"].to_numpy())
    return Evaluation(mae=float(np.mean(errors)), mape=mape, coverage=float(np.mean(inside)),
                      holdout_days=holdout_days, train_rows=len(train), test_rows=len(test), fit_seconds=seconds)
