"""common.config: every problem named at once, secrets from files, nothing secret echoed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from common.config import ConfigError, Env, format_duration, parse_duration


def test_typed_values_and_defaults():
    env = Env({"PORT": "8086", "RATIO": "0.5", "ON": "yes", "OFF": "False", "NAMES": "a, b,,c", "WAIT": "1h30m",
               "URL": "http://influxdb3:8181/", "MODE": "json"})
    assert env.int("PORT") == 8086
    assert env.float("RATIO", max=1.0) == 0.5
    assert env.bool("ON") is True and env.bool("OFF") is False and env.bool("UNSET", False) is False
    assert env.list("NAMES") == ["a", "b", "c"]
    assert env.duration("WAIT") == timedelta(hours=1, minutes=30)
    assert env.duration("UNSET_WAIT", "30s") == timedelta(seconds=30)
    assert env.url("URL") == "http://influxdb3:8181"
    assert env.choice("MODE", ["text", "json"]) == "json"
    assert env.str("MISSING", "fallback") == "fallback"
    env.finish()


def test_all_problems_are_collected_and_named():
    env = Env({"PORT": "80a", "RATIO": "2", "ON": "maybe", "WAIT": "soon", "URL": "influxdb3:8181", "MODE": "xml"})
    env.int("PORT")
    env.float("RATIO", max=1.0)
    env.bool("ON")
    env.duration("WAIT")
    env.url("URL")
    env.choice("MODE", ["text", "json"])
    env.str("REQUIRED")
    with pytest.raises(ConfigError) as raised:
        env.finish()
    problems = raised.value.problems
    assert [p.split(":")[0] for p in problems] == ["PORT", "RATIO", "ON", "WAIT", "URL", "MODE", "REQUIRED"]
    assert "'80a' is not a whole number" in problems[0]
    assert "2.0 is above the maximum 1.0" in problems[1]
    assert "not a duration" in problems[3]
    assert "REQUIRED: is required but not set" in problems[6]


def test_secret_from_file_is_stripped(tmp_path: Path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value\n")
    env = Env({"TOKEN_FILE": str(secret)})
    assert env.secret("TOKEN") == "s3cr3t-value"
    env.finish()


def test_secret_problems_never_show_the_value(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    env = Env({"A": "s3cr3t-a", "A_FILE": str(empty), "B_FILE": str(empty), "C_FILE": str(tmp_path / "nope")})
    assert env.secret("A") is None and env.secret("B") is None and env.secret("C") is None
    env.secret("D")
    with pytest.raises(ConfigError) as raised:
        env.finish()
    text = str(raised.value)
    assert "s3cr3t" not in text
    assert "set both A and A_FILE" in text and "is empty" in text and "cannot read" in text
    assert "D: is required but not set (set D or D_FILE)" in text


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("7d", 604800),
                                               ("2w", 1209600), ("250ms", 0.25)])
def test_durations(text: str, seconds: float):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "10", "1x", "h", "0s", "1h 30m", "-5m"])
def test_bad_durations_are_refused(bad: str):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_durations_format_back():
    assert format_duration(parse_duration("1h30m")) == "1h30m"
    assert format_duration(timedelta(days=8)) == "1w1d"
