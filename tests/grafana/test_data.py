"""The files the Docker test loads through the ingest CLI are ones the ingest app's own parsers accept whole."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from ingest.csvreader import CsvFile
from ingest.schema import BIRD_FIXES, WEATHER
from ingest.sources.movebank import MovebankFile
from ingest.sources.weather import Location
from ingest.sources.weather import open_meteo_hourly as parse_open_meteo_hourly
from tests.grafana.data import bird_fixes, movebank_csv, open_meteo_hourly, weather_rows

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_generated_movebank_export_loads_every_fix_with_its_flags(tmp_path):
    frame = bird_fixes(NOW, np.random.default_rng(1))
    path = tmp_path / "birds.csv"
    movebank_csv(frame, path)
    chunks = list(MovebankFile(CsvFile(path)).chunks())
    assert not [reject for chunk in chunks for reject in chunk.rejects]
    table = pa.concat_tables([chunk.table for chunk in chunks])
    assert table.num_rows == len(frame)
    for tag in BIRD_FIXES.tags:
        assert sorted(set(table.column(tag).to_pylist())) == sorted(frame[tag].unique()), tag
    assert table.column("outlier").to_pylist().count(True) == int(frame["outlier"].sum())
    assert table.column("visible").to_pylist().count(False) == int((~frame["visible"]).sum())
    assert table.column("lat").to_pylist() == pytest.approx(frame["lat"].tolist())


def test_generated_open_meteo_response_loads_every_hour_and_field():
    rows = weather_rows(NOW, np.random.default_rng(2))
    one = rows[rows["location"] == "Assen"]
    table = parse_open_meteo_hourly(open_meteo_hourly(one), Location("Assen", 52.99, 6.56))
    assert table.num_rows == len(one)
    times = table.column("time").to_numpy()
    assert list(times) == list(one["time"].dt.as_unit("ns").astype("int64"))
    for name in WEATHER.field_names:
        assert table.column(name).to_pylist() == pytest.approx(one[name].round(2).tolist(), abs=1e-9), name
