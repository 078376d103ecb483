"""Pacing: the token bucket, the per-recipient cap and its memory."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

import pytest

from outreach import RecipientCap
from outreach._models import Medium
from outreach._ratelimit import Pacer

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_a_channel_rate_spaces_slots_and_long_sms_cost_more() -> None:
    pacer = Pacer({"sms": 2.0}, cap=None)
    slots = [pacer.admit("sms", Medium.SMS, f"+1617555{i:04d}", T0) for i in range(3)]
    assert slots == [T0, T0 + timedelta(seconds=0.5), T0 + timedelta(seconds=1)]
    pacer.charge_extra("sms", 2)  # the last one was three segments long
    assert pacer.admit("sms", Medium.SMS, "+16175559999", T0) == T0 + timedelta(seconds=2.5)


def test_the_cap_allows_count_per_period_per_address() -> None:
    pacer = Pacer({}, cap=RecipientCap(count=3, per=timedelta(hours=1)))
    address = "+16175550123"
    for minute in range(3):
        now = T0 + timedelta(minutes=minute)
        assert pacer.admit("sms", Medium.SMS, address, now) == now
    assert pacer.admit("sms", Medium.SMS, address, T0 + timedelta(minutes=5)) == T0 + timedelta(
        hours=1
    )
    assert pacer.admit("sms", Medium.EMAIL, "a@example.com", T0) == T0  # email is not capped
    assert pacer.admit("voice", Medium.VOICE, address, T0) == T0  # each medium counts apart


def test_a_send_the_provider_refused_gives_its_place_in_the_cap_back() -> None:
    """A request refused (a 429, say) reached no one: it does not count against the cap."""
    pacer = Pacer({}, cap=RecipientCap(count=3, per=timedelta(hours=1)))
    address = "+16175550123"
    for second in range(6):
        now = T0 + timedelta(seconds=second)
        assert pacer.admit("sms", Medium.SMS, address, now) == now
        pacer.refund(Medium.SMS, address)
    for second in range(6, 9):
        now = T0 + timedelta(seconds=second)
        assert pacer.admit("sms", Medium.SMS, address, now) == now
    later = T0 + timedelta(seconds=10)
    assert pacer.admit("sms", Medium.SMS, address, later) == T0 + timedelta(hours=1, seconds=6)


def test_the_cap_forgets_quiet_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("outreach._ratelimit._SWEEP_EVERY", 10)
    pacer = Pacer({}, cap=RecipientCap(count=3, per=timedelta(hours=1)))
    for i in range(10):
        pacer.admit("sms", Medium.SMS, f"+1617555{i:04d}", T0)
    later = T0 + timedelta(hours=2)
    for i in range(10):
        pacer.admit("sms", Medium.SMS, f"+1212555{i:04d}", later)
    assert len(pacer._recent) == 10  # the first ten were swept


def test_the_cap_memory_is_left_alone_by_the_garbage_collector() -> None:
    """One entry per person contacted: the cyclic GC must not crawl them on every full pass."""
    pacer = Pacer({}, cap=RecipientCap(count=3, per=timedelta(hours=1)))
    for i in range(100):
        for minute in range(4):
            pacer.admit("sms", Medium.SMS, f"+1617555{i:04d}", T0 + timedelta(minutes=minute))
    gc.collect()
    assert all(len(times) <= 3 for times in pacer._recent.values())
    assert not any(gc.is_tracked(key) or gc.is_tracked(t) for key, t in pacer._recent.items())
