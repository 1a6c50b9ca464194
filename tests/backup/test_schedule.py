"""BACKUP_SCHEDULE: parsing, next run times in a time zone, and DST gaps and overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.schedule import Schedule, ScheduleError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize("expression, reason", [
    ("59 23 * *", "must have 5 fields"),
    ("0 59 23 * * *", "must have 5 fields"),
    ("61 23 * * *", "not a valid cron expression"),
    ("every day", "must have 5 fields"),
])
def test_invalid_expressions_are_rejected_with_the_reason(expression, reason):
    with pytest.raises(ScheduleError, match=reason):
        Schedule(expression, BERLIN)


def test_the_default_runs_daily_at_2359_local_time():
    schedule = Schedule("59 23 * * *", BERLIN)
    first = schedule.next_after(datetime(2025, 1, 7, 12, 0, tzinfo=BERLIN))
    assert first.astimezone(BERLIN) == datetime(2025, 1, 7, 23, 59, tzinfo=BERLIN)
    assert first == datetime(2025, 1, 7, 22, 59, tzinfo=UTC)
    assert schedule.next_after(first).astimezone(BERLIN) == datetime(2025, 1, 8, 23, 59, tzinfo=BERLIN)
    assert schedule.previous_at_or_before(first) == first
    assert schedule.previous_at_or_before(first - timedelta(seconds=1)).astimezone(BERLIN) == \
        datetime(2025, 1, 6, 23, 59, tzinfo=BERLIN)


def test_a_time_in_the_spring_gap_runs_once_right_after_the_jump():
    schedule = Schedule("30 2 * * *", BERLIN)  # 02:30 does not exist on 2025-03-30 in Berlin
    run = schedule.next_after(datetime(2025, 3, 29, 12, 0, tzinfo=BERLIN))
    assert run == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)  # 03:00 CEST, the first minute after the gap
    following = schedule.next_after(run)
    assert following.astimezone(BERLIN) == datetime(2025, 3, 31, 2, 30, tzinfo=BERLIN)


def test_a_time_in_the_autumn_overlap_runs_once_at_its_first_occurrence():
    schedule = Schedule("30 1 * * *", NEW_YORK)  # 01:30 happens twice on 2025-11-02 in New York
    run = schedule.next_after(datetime(2025, 11, 1, 12, 0, tzinfo=NEW_YORK))
    assert run == datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # 01:30 EDT (UTC-4)
    following = schedule.next_after(run)
    assert following.astimezone(NEW_YORK) == datetime(2025, 11, 3, 1, 30, tzinfo=NEW_YORK)
    assert following - run == timedelta(hours=25)


def test_half_hourly_runs_across_the_overlap_never_repeat_a_wall_clock_time():
    schedule = Schedule("*/30 * * * *", BERLIN)
    moment, runs = datetime(2025, 10, 26, 1, 50, tzinfo=BERLIN), []
    for _ in range(6):
        moment = schedule.next_after(moment)
        runs.append(moment)
    walls = [run.astimezone(BERLIN).strftime("%H:%M") for run in runs]
    assert walls == ["02:00", "02:30", "03:00", "03:30", "04:00", "04:30"]
    assert all(later > earlier for earlier, later in pairwise(runs))


def test_interval_around_is_the_gap_between_consecutive_runs():
    assert Schedule("59 23 * * *", BERLIN).interval_around(datetime(2025, 6, 1, tzinfo=UTC)) == timedelta(days=1)
    assert Schedule("0 */6 * * *", UTC).interval_around(datetime(2025, 6, 1, 1, tzinfo=UTC)) == timedelta(hours=6)


@settings(max_examples=60, deadline=None)
@given(moment=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
       expression=st.sampled_from(["59 23 * * *", "*/15 * * * *", "30 2 * * 0", "0 1,2,3 * * *", "5 4 1 * *"]),
       zone=st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), UTC]))
def test_next_run_is_later_and_lands_on_a_matching_wall_time_or_a_gap_end(moment, expression, zone):
    schedule = Schedule(expression, zone)
    run = schedule.next_after(moment)
    assert run > moment
    assert schedule.previous_at_or_before(run) == run
    local = run.astimezone(zone).replace(tzinfo=None)
    if not croniter.match(expression, local):
        # only allowed when a matching wall time just before it did not exist (a DST gap)
        assert run.astimezone(zone).utcoffset() != (run - timedelta(hours=1)).astimezone(zone).utcoffset()
