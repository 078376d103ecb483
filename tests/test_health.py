"""The per-channel circuit breaker: off after a configuration error, probed with backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outreach._health import ChannelHealth

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_backoff_doubles_from_one_minute_up_to_thirty() -> None:
    health = ChannelHealth()
    now = T0
    backoffs = []
    for _ in range(8):
        backoff = health.failed("sms", "401", now)
        assert backoff is not None
        backoffs.append(backoff)
        assert "sms" in health.unavailable(now + backoff - timedelta(seconds=1))
        now += backoff
        assert health.unavailable(now) == {}  # half-open: the next step is the probe
    assert [b.total_seconds() / 60 for b in backoffs] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_reports_while_off_change_nothing_and_a_success_switches_it_back_on() -> None:
    health = ChannelHealth(probe_after=timedelta(minutes=5), probe_max=timedelta(minutes=20))
    assert health.failed("email", "403", T0) == timedelta(minutes=5)
    assert health.failed("email", "403", T0 + timedelta(minutes=1)) is None  # concurrent send
    [reason] = health.unavailable(T0 + timedelta(minutes=4)).values()
    assert reason.startswith("403 (tried again after 2026-11-23 14:05:00")
    assert health.failed("email", "403", T0 + timedelta(minutes=5)) == timedelta(minutes=10)
    assert health.succeeded("email") is True
    assert health.unavailable(T0 + timedelta(minutes=6)) == {}
    assert health.succeeded("email") is False  # it already was on
    assert health.failed("email", "403", T0 + timedelta(minutes=7)) == timedelta(minutes=5)


def test_nonsense_backoffs_are_refused() -> None:
    with pytest.raises(ValueError, match="probe_after"):
        ChannelHealth(probe_after=timedelta(minutes=5), probe_max=timedelta(minutes=1))
