"""The forecast chart page: served as HTML with plotly.js embedded, and drawn by headless Chromium offline."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.plugins.conftest import daily_series, series_lines

PLUGIN = "forecast/forecast_chart"
LATEST, OLDER = "2024-01-02T03:00:00Z-bbbbbb", "2024-01-01T03:00:00Z-aaaaaa"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=15000", "--window-size=1200,700"]


def forecast_lines(history: pd.DataFrame, run: str, offset: float) -> list[str]:
    """A run as the forecast plugin writes it: rows in the run's own second, the forecast day in `ds`."""
    days = pd.date_range(history["ds"].max() + pd.Timedelta(days=1), periods=90, freq="D")
    yhat = history["y"].iloc[-30:].mean() + offset + 0.3 * np.sin(np.arange(90) / 7)
    start = pd.Timestamp(run[:20]).value
    return [f"peyton_forecast,series=peyton_manning,run={run} ds={int(day.as_unit('ns').value)}i,yhat={v!r},"
            f"yhat_lower={v - 0.6!r},yhat_upper={v + 0.6!r} {start + index}"
            for index, (day, v) in enumerate(zip(days, yhat.tolist(), strict=True))]


@pytest.fixture
def chart_data(engine):
    history = daily_series(365)
    engine.write_lp("forecast", series_lines(history))
    engine.write_lp("forecast", forecast_lines(history, OLDER, 5.0) + forecast_lines(history, LATEST, 0.0))
    return history


def test_page_is_html_with_plotly_embedded_and_the_latest_run(engine, chart_data):
    response = engine.run_request(PLUGIN, "forecast", {"days": "180"}).raise_for_error().response
    assert response.status == 200 and response.content_type.startswith("text/html")
    page = response.body
    assert page.lstrip().lower().startswith("<html") or page.lstrip().lower().startswith("<!doctype")
    assert not re.search(r"<script[^>]+src=", page), "no external script: plotly.js must be embedded"
    assert not re.search(r"<link[^>]+href=[\"']https?:", page), "no external stylesheet either"
    assert len(page) > 1_000_000, "plotly.js (megabytes) is inline"
    assert f"forecast run {LATEST}" in page and OLDER not in page


def test_history_only_and_missing_data(engine, chart_data):
    page = engine.run_request(PLUGIN, "forecast", {"series": "nobody"}).response
    assert page.status == 404
    older = engine.run_request(PLUGIN, "forecast", {"run": OLDER}).response
    assert older.status == 200 and f"forecast run {OLDER}" in older.body
    fresh = engine.run_request(PLUGIN, "other-db").response
    assert fresh.status == 404 and "load the series first" in fresh.body
    bad = engine.run_request(PLUGIN, "forecast", {"days": "-3"}).response
    assert bad.status == 400
    not_a_run = engine.run_request(PLUGIN, "forecast", {"run": "yesterday"}).response
    assert not_a_run.status == 400 and "forecast run id" in not_a_run.body


def color_pixels(image: Image.Image, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - np.array(rgb)).max(axis=2) <= tolerance).sum())


@pytest.mark.slow
def test_chromium_draws_history_forecast_and_interval_offline(engine, chart_data, tmp_path):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
    page = tmp_path / "chart.html"
    page.write_text(engine.run_request(PLUGIN, "forecast").raise_for_error().response.body, encoding="utf-8")
    shot = tmp_path / "chart.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    image = Image.open(shot)
    assert image.size == (1200, 700)
    # The traces' colours (stacklib.chart.COLORS): history blue, forecast red, interval light red on white.
    assert color_pixels(image, (31, 119, 180)) > 2000, "history trace not drawn"
    assert color_pixels(image, (214, 39, 40)) > 300, "forecast trace not drawn"
    assert color_pixels(image, (245, 201, 201), tolerance=12) > 300, "prediction interval not drawn"
