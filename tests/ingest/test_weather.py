"""Weather providers into `weather`: Open-Meteo current and archive, OpenWeatherMap, same fields and units."""

from __future__ import annotations

import json
import math
from datetime import date

import pytest

from common.retry import RetryPolicy
from ingest.download import Http
from ingest.sources import SourceError
from ingest.sources.weather import (
    ENCODER,
    Location,
    OpenMeteo,
    OpenWeatherMap,
    open_meteo_current,
    open_meteo_hourly,
    openweathermap_current,
    parse_locations,
)
from tests.support.lineprotocol import parse_lines
from tests.support.paths import shared_file
from tests.support.recorder import RecordingServer, Reply

ASSEN = Location("Assen", 52.99, 6.56)
VARIABLES = ["temperature_2m", "relative_humidity_2m", "pressure_msl", "wind_speed_10m", "wind_direction_10m",
             "precipitation", "cloud_cover"]


def points(chunk):
    return parse_lines(chunk.encoder.encode(chunk.table).text())


def open_meteo_current_doc(time_value, *, offset: int = 0) -> dict:
    """The shape of api.open-meteo.com/v1/forecast?current=... (as documented and served)."""
    return {"latitude": 53.0, "longitude": 6.5600004, "generationtime_ms": 0.04, "utc_offset_seconds": offset,
            "timezone": "GMT", "timezone_abbreviation": "GMT", "elevation": 14.0,
            "current_units": {"time": "unixtime" if isinstance(time_value, int) else "iso8601",
                              "interval": "seconds", "temperature_2m": "°C", "relative_humidity_2m": "%",
                              "pressure_msl": "hPa", "wind_speed_10m": "m/s", "wind_direction_10m": "°",
                              "precipitation": "mm", "cloud_cover": "%"},
            "current": {"time": time_value, "interval": 900, "temperature_2m": 11.3, "relative_humidity_2m": 87,
                        "pressure_msl": 1012.4, "wind_speed_10m": 4.1, "wind_direction_10m": 236,
                        "precipitation": 0.2, "cloud_cover": 100}}


def archive_doc(start_hour_iso: list[str], offset: int = 0) -> dict:
    hours = len(start_hour_iso)
    hourly = {"time": start_hour_iso, "temperature_2m": [5.0 + i / 10 for i in range(hours)],
              "relative_humidity_2m": [80] * hours, "pressure_msl": [1010.0] * hours,
              "wind_speed_10m": [3.5] * hours, "wind_direction_10m": [180] * hours,
              "precipitation": [0.0] * (hours - 1) + [None], "cloud_cover": [50] * hours}
    return {"latitude": 53.0, "longitude": 6.56, "generationtime_ms": 1.0, "utc_offset_seconds": offset,
            "timezone": "GMT", "timezone_abbreviation": "GMT", "elevation": 14.0,
            "hourly_units": {"time": "iso8601", **dict.fromkeys(VARIABLES, "x")}, "hourly": hourly}


def test_open_meteo_current_request_and_fields():
    with RecordingServer(lambda request: Reply(200, open_meteo_current_doc(1704067200))) as server:
        provider = OpenMeteo(Http(policy=RetryPolicy(attempts=1)), forecast_url=server.url + "/v1/forecast")
        chunk = provider.current(ASSEN)
        [request] = server.requests
    assert request.path == "/v1/forecast"
    assert request.param("latitude") == "52.99" and request.param("longitude") == "6.56"
    assert request.param("current").split(",") == VARIABLES
    assert request.param("wind_speed_unit") == "ms" and request.param("timeformat") == "unixtime"
    [point] = points(chunk)
    assert point.measurement == "weather" and point.tags == {"location": "Assen", "provider": "open-meteo"}
    assert point.timestamp == 1704067200 * 10**9
    assert point.fields == {"temperature": 11.3, "humidity": 87.0, "pressure": 1012.4, "wind_speed": 4.1,
                            "wind_direction": 236.0, "precipitation": 0.2, "cloud_cover": 100.0}
    assert set(point.field_types.values()) == {"float"}


def test_open_meteo_local_iso_times_are_shifted_to_utc():
    doc = open_meteo_current_doc("2024-01-01T01:00", offset=3600)
    [point] = parse_lines(ENCODER.encode(open_meteo_current(doc, ASSEN)).text())
    assert point.timestamp == 1704067200 * 10**9


def test_archive_backfill_asks_92_days_at_a_time_and_leaves_nulls_out():
    seen = []

    def respond(request):
        seen.append((request.param("start_date"), request.param("end_date")))
        return Reply(200, archive_doc([f"{request.param('start_date')}T{hour:02d}:00" for hour in range(3)]))

    with RecordingServer(respond) as server:
        provider = OpenMeteo(Http(policy=RetryPolicy(attempts=1)), archive_url=server.url + "/v1/archive")
        chunks = list(provider.archive(ASSEN, date(2024, 1, 1), date(2024, 6, 30)))
        assert server.requests[0].param("hourly").split(",") == VARIABLES
    assert seen == [("2024-01-01", "2024-04-01"), ("2024-04-02", "2024-06-30")]  # 92 days per request
    first = points(chunks[0])
    assert [point.timestamp for point in first] == [1704067200 * 10**9 + hour * 3600 * 10**9 for hour in range(3)]
    assert "precipitation" in first[0].fields and "precipitation" not in first[2].fields


def test_open_meteo_error_reason_is_shown():
    with RecordingServer(lambda request: Reply(400, {"error": True, "reason": "Latitude must be in range"})) as s:
        provider = OpenMeteo(Http(policy=RetryPolicy(attempts=1)), forecast_url=s.url + "/v1/forecast")
        with pytest.raises(SourceError, match="Latitude must be in range"):
            provider.current(ASSEN)


def openweathermap_doc(**extra) -> dict:
    return {"coord": {"lon": 6.56, "lat": 52.99}, "weather": [{"id": 500, "main": "Rain"}], "base": "stations",
            "main": {"temp": 8.94, "feels_like": 7.91, "pressure": 997, "humidity": 90}, "visibility": 10000,
            "wind": {"speed": 2.06, "deg": 250}, "clouds": {"all": 75}, "dt": 1556444155, "timezone": 3600,
            "id": 2759899, "name": "Assen", "cod": 200, **extra}


def test_openweathermap_metric_request_and_precipitation():
    with RecordingServer(lambda request: Reply(200, openweathermap_doc(rain={"1h": 0.7}, snow={"1h": 0.1}))) as s:
        provider = OpenWeatherMap(Http(policy=RetryPolicy(attempts=1)), "secret-key", url=s.url + "/data/2.5/weather")
        [point] = points(provider.current(ASSEN))
        [request] = s.requests
    assert request.param("units") == "metric" and request.param("appid") == "secret-key"
    assert point.tags == {"location": "Assen", "provider": "openweathermap"}
    assert point.timestamp == 1556444155 * 10**9
    assert point.fields == {"temperature": 8.94, "humidity": 90.0, "pressure": 997.0, "wind_speed": 2.06,
                            "wind_direction": 250.0, "precipitation": pytest.approx(0.8), "cloud_cover": 75.0}


def test_openweathermap_without_rain_reports_zero_and_a_bad_key_says_so():
    [point] = parse_lines(ENCODER.encode(openweathermap_current(openweathermap_doc(), ASSEN)).text())
    assert point.fields["precipitation"] == 0.0
    with RecordingServer(lambda request: Reply(401, {"cod": 401, "message": "Invalid API key."})) as s:
        provider = OpenWeatherMap(Http(policy=RetryPolicy(attempts=1)), "wrong", url=s.url + "/weather")
        with pytest.raises(SourceError, match="OPENWEATHERMAP_API_KEY"):
            provider.current(ASSEN)


def test_a_response_of_the_wrong_shape_is_named():
    with pytest.raises(SourceError, match="no 'hourly'"):
        open_meteo_hourly({"latitude": 1}, ASSEN)
    broken = archive_doc(["2024-01-01T00:00", "2024-01-01T01:00"])
    broken["hourly"]["cloud_cover"] = [1]
    with pytest.raises(SourceError, match="cloud_cover has 1 values for 2 times"):
        open_meteo_hourly(broken, ASSEN)


def test_the_real_recorded_responses_parse():
    archive = json.loads(shared_file("weather/open_meteo_archive.json").read_text())
    hours = parse_lines(ENCODER.encode(open_meteo_hourly(archive, Location("Brasilia", -15.8, -47.9))).text())
    assert len(hours) == 24 and hours[0].timestamp == 1672282800 * 10**9  # 00:00 at UTC-3
    assert all(set(point.fields) == {"temperature"} for point in hours)
    for name in ("openweathermap_current.json", "openweathermap_current_rain.json"):
        doc = json.loads(shared_file(f"weather/{name}").read_text())
        [point] = parse_lines(ENCODER.encode(openweathermap_current(doc, ASSEN)).text())
        assert point.timestamp == doc["dt"] * 10**9 and not math.isnan(point.fields["temperature"])


@pytest.mark.parametrize("text,problem", [("Assen", "NAME=LATITUDE,LONGITUDE"), ("A=91,0", "within"),
                                          ("A=1,1;A=2,2", "twice"), ("", "no location")])
def test_locations_are_validated(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_locations(text)
    assert parse_locations("Assen = 52.99, 6.56; New York=40.71,-74.01")[1] == Location("New York", 40.71, -74.01)
