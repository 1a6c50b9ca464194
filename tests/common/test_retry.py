"""common.retry: backoff bounds, Retry-After in both forms, and what is (not) retried."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from common.retry import RetryableError, RetryPolicy, call_with_retry, parse_retry_after


def test_retry_after_seconds_and_http_date():
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=45), usegmt=True), now=now) == 45.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=45), usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("") is None and parse_retry_after("soon") is None


def test_backoff_is_jittered_exponential_and_capped():
    policy = RetryPolicy(base=0.5, cap=4.0, rng=random.Random(7))
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        waits = [policy.wait(attempt) for _ in range(200)]
        assert min(waits) >= 0 and max(waits) <= ceiling
        assert max(waits) > ceiling * 0.8  # full jitter spans the whole range


def test_server_requested_wait_wins_but_is_bounded():
    policy = RetryPolicy(max_wait=60)
    assert policy.wait(1, retry_after=12) == 12
    assert policy.wait(1, retry_after=3600) == 60


def test_retries_until_success_and_reports_each_wait():
    calls, sleeps, reported = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RetryableError("busy", retry_after=2)
        return "ok"

    result = call_with_retry(flaky, RetryPolicy(attempts=5), sleep=sleeps.append,
                             on_retry=lambda n, exc, delay: reported.append((n, delay)))
    assert result == "ok" and len(calls) == 3 and sleeps == [2, 2] and reported == [(1, 2), (2, 2)]


def test_gives_up_after_the_last_attempt():
    with pytest.raises(RetryableError, match="still down"):
        call_with_retry(lambda: (_ for _ in ()).throw(RetryableError("still down")),
                        RetryPolicy(attempts=3, base=0), sleep=lambda s: None)


def test_non_retryable_errors_are_not_retried():
    calls = []

    def unauthorized():
        calls.append(1)
        raise PermissionError("401")

    with pytest.raises(PermissionError):
        call_with_retry(unauthorized, RetryPolicy(), sleep=lambda s: None)
    assert len(calls) == 1


def test_retryable_statuses():
    policy = RetryPolicy()
    assert all(policy.is_retryable_status(s) for s in (429, 500, 502, 503, 504))
    assert not any(policy.is_retryable_status(s) for s in (400, 401, 403, 404, 409, 422))
