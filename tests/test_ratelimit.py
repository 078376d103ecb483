"""Pacing: which limits a send is charged against (the store keeps the buckets; the store
suite tests them on every store)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from outreach import RecipientCap
from outreach._models import Medium
from outreach._ratelimit import Pacer
from outreach.exceptions import ConfigurationError
from outreach.stores import Limit

ADDRESS = "+16175550123"


def test_a_send_is_charged_to_the_cap_first_then_to_its_senders_rate() -> None:
    pacer = Pacer({"sms": 2.0}, senders={"sms": "+15550001"})
    assert pacer.limits("sms", Medium.SMS, ADDRESS) == (
        Limit("cap:sms", ADDRESS, timedelta(hours=1), burst=3),
        Limit("rate:sms", "+15550001", timedelta(seconds=0.5)),
    )


def test_unpaced_channels_and_uncapped_media_have_no_limits() -> None:
    pacer = Pacer({"email": None}, cap=RecipientCap(media=frozenset({Medium.SMS})))
    assert pacer.limits("email", Medium.EMAIL, "a@example.com") == ()
    assert pacer.limits("voice", Medium.VOICE, ADDRESS) == ()
    assert Pacer({"sms": 1.0}, cap=None).limits("sms", Medium.SMS, ADDRESS) == (
        Limit("rate:sms", "", timedelta(seconds=1)),
    )


def test_extra_segments_and_refunds_are_limits_with_a_cost() -> None:
    pacer = Pacer({"sms": 4.0})
    [extra] = pacer.rate("sms", 2)
    assert extra.step == timedelta(seconds=0.5)
    [refund] = pacer.capped(Medium.SMS, ADDRESS, -1)
    assert refund.step == -timedelta(hours=1)
    assert refund.tolerance == timedelta(hours=2)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"count": 0}, "count must be at least 1, got 0"),
        ({"per": timedelta(0)}, "per must be a positive time"),
    ],
)
def test_a_cap_that_could_never_let_a_message_through_is_refused(
    options: dict[str, object], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        RecipientCap(**options)  # type: ignore[arg-type]


def test_a_bucket_without_a_positive_interval_or_burst_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"pacing rate:sms '\+1555'"):
        Limit("rate:sms", "+1555", timedelta(0))
    with pytest.raises(ConfigurationError, match="burst at least 1"):
        Limit("cap:sms", "+1555", timedelta(hours=1), burst=0)
