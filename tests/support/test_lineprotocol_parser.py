"""The strict line-protocol parser that our encoder and local engine are held to."""

from __future__ import annotations

import pytest

from tests.support.lineprotocol import LineProtocolError, parse_line, parse_lines
from tests.support.paths import shared_file


def test_a_full_line_with_every_field_type():
    point = parse_line('weather,location=San\\ Francisco,provider=open-meteo temp=12.5,hum=81i,ok=t,'
                       'count=3u,note="said \\"hi\\" \\\\ bye" 1700000000000000000')
    assert point.measurement == "weather"
    assert point.tags == {"location": "San Francisco", "provider": "open-meteo"}
    assert point.fields == {"temp": 12.5, "hum": 81, "ok": True, "count": 3, "note": 'said "hi" \\ bye'}
    assert point.field_types == {"temp": "float", "hum": "int", "ok": "bool", "count": "uint", "note": "string"}
    assert point.timestamp == 1700000000000000000


def test_escapes_in_measurement_keys_and_values():
    point = parse_line("my\\ meas\\,ure,t\\=k\\ ey=v\\,a\\=l\\ ue f\\ i\\=eld=1")
    assert point.measurement == "my meas,ure"
    assert point.tags == {"t=k ey": "v,a=l ue"}
    assert point.fields == {"f i=eld": 1.0}


def test_a_backslash_before_other_characters_is_literal():
    assert parse_line("m,path=C:\\temp f=1").tags == {"path": "C:\\temp"}


@pytest.mark.parametrize(("line", "reason"), [
    ("m f=1 ", "trailing whitespace"),
    (" m f=1", "leading"),
    ("m", "missing space"),
    ("m,t= f=1", "empty value"),
    ("m,=v f=1", "empty tag key"),
    ("m,t=v", "missing space"),
    ("m f=", "empty field value"),
    ("m f=nan", "bad field value"),
    ("m f=inf", "bad field value"),
    ("m f=1e400", "non-finite"),
    ("m f=9223372036854775808i", "out of range"),
    ("m f=-1u", "bad unsigned"),
    ("m f=yes", "bad field value"),
    ('m f="open', "unterminated string"),
    ("m f=1 12.5", "bad timestamp"),
    ("m f=1  12", "bad timestamp"),
    ("m,time=1 f=1", "'time' cannot be a tag"),
    ("m time=1", "'time' cannot be a field"),
    ("m f=1,f=2", "appears twice"),
    ("m,a=1,a=2 f=1", "appears twice"),
    ("m,a=1 a=2", "both a tag and a field"),
    ("m,a=b=c f=1", "unescaped '='"),
    ("m f=1\r", "carriage return"),
    (",t=v f=1", "empty measurement"),
    ("m,path=C:\\\\temp f=1", "double backslash"),
    ("m a\\\\b=1", "double backslash"),
])
def test_invalid_lines_are_refused_with_a_reason(line: str, reason: str):
    with pytest.raises(LineProtocolError) as raised:
        parse_line(line)
    assert reason in raised.value.reason


def test_bodies_skip_blank_lines_and_comments_and_number_errors():
    points = parse_lines("# header\n\nm f=1 1\nm f=2 2\n")
    assert [p.fields["f"] for p in points] == [1.0, 2.0]
    with pytest.raises(LineProtocolError) as raised:
        parse_lines("m f=1\nm f=oops\n")
    assert raised.value.lineno == 2


@pytest.mark.parametrize("name", ["bay-area-weather.lp", "eu-wind-data.lp", "home-sensor-data.lp"])
def test_influxdatas_published_samples_parse(name: str):
    text = shared_file(f"influxdb/{name}").read_text()
    points = parse_lines(text)
    assert len(points) == sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    assert all(p.timestamp is not None for p in points)
    if name == "home-sensor-data.lp":
        assert {p.tags["room"] for p in points} == {"Living Room", "Kitchen"}
        assert all(p.field_types["co"] == "int" for p in points)
