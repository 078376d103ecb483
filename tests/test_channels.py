"""Channel plumbing: Failover, the registry, the console channel, medium resolution."""

from __future__ import annotations

import io

import pytest

from outreach._models import AttemptStatus, Medium
from outreach.channels import (
    Console,
    Failover,
    Message,
    available_channels,
    build_channel,
    resolve_media,
)
from outreach.exceptions import (
    ConfigurationError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from outreach.testing import InMemoryChannel

MESSAGE = Message(
    notification_id="n", attempt_id="n.0.0.0", medium=Medium.SMS, to="+16175550123", body="hi"
)


async def test_failover_moves_on_after_a_transient_or_configuration_failure() -> None:
    first, second, third = (InMemoryChannel(Medium.SMS, name=n) for n in ("a", "b", "c"))
    first.fail_next(error=TransientDeliveryError("503"))
    second.fail_next(error=ConfigurationError("401"))
    receipt = await Failover(first, second, third).send(MESSAGE)
    assert receipt.provider_id == "c-1"
    assert [len(c.outbox) for c in (first, second, third)] == [0, 0, 1]


async def test_failover_raises_a_permanent_failure_at_once() -> None:
    first, second = InMemoryChannel(Medium.SMS, name="a"), InMemoryChannel(Medium.SMS, name="b")
    first.fail_next(error=PermanentDeliveryError("21211 invalid number"))
    with pytest.raises(PermanentDeliveryError):
        await Failover(first, second).send(MESSAGE)
    assert second.outbox == []


async def test_failover_raises_the_last_error_when_all_fail() -> None:
    first, second = InMemoryChannel(Medium.SMS, name="a"), InMemoryChannel(Medium.SMS, name="b")
    first.fail_next()
    second.fail_next(error=TransientDeliveryError("second is down"))
    with pytest.raises(TransientDeliveryError, match="second is down"):
        await Failover(first, second).send(MESSAGE)


def test_failover_needs_one_medium() -> None:
    with pytest.raises(ConfigurationError, match="same medium"):
        Failover(InMemoryChannel(Medium.SMS), InMemoryChannel(Medium.EMAIL))
    with pytest.raises(ConfigurationError):
        Failover()


def test_registry_lists_entry_points_and_builds_them() -> None:
    assert {"console", "memory"} <= set(available_channels())
    channel = build_channel("memory", medium="sms", name="x")
    assert isinstance(channel, InMemoryChannel)
    with pytest.raises(ConfigurationError, match="no channel called 'pigeon'"):
        build_channel("pigeon")


def test_media_come_from_the_channel_or_its_name() -> None:
    media = resolve_media({"sms": InMemoryChannel(), "backup": InMemoryChannel(Medium.VOICE)})
    assert media == {"sms": Medium.SMS, "backup": Medium.VOICE}
    with pytest.raises(ConfigurationError, match="'pager'"):
        resolve_media({"pager": InMemoryChannel()})


async def test_console_prints_and_reports_sent() -> None:
    out = io.StringIO()
    receipt = await Console("sms", stream=out).send(MESSAGE)
    assert receipt.status is AttemptStatus.SENT
    assert out.getvalue() == "--- sms to +16175550123\nhi\n"


async def test_failover_paces_like_its_slowest_provider_and_hangs_up_through_them() -> None:
    first = InMemoryChannel(Medium.VOICE, name="a", rate=5)
    second = InMemoryChannel(Medium.VOICE, name="b", rate=1)
    both = Failover(first, second)
    assert both.rate == 1
    await both.cancel("CA123")
    assert first.cancelled == ["CA123"]
