"""Channel plumbing: the seam's defaults, Failover, the registry, the console channel, media."""

from __future__ import annotations

import io

import pytest

from outreach._models import AttemptStatus, Medium
from outreach.channels import (
    Channel,
    Console,
    Failover,
    Message,
    Receipt,
    available_channels,
    build_channel,
    resolve_media,
)
from outreach.channels._base import as_channel
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


class _Duck:
    """A channel written against the protocol alone: no base class, no optional members."""

    name = "duck"

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, message: Message) -> Receipt:
        self.sent.append(message)
        return Receipt("duck-1")

    async def aclose(self) -> None:
        """Nothing to release."""


async def test_a_channel_without_the_base_class_gets_its_defaults() -> None:
    duck = _Duck()
    channel = as_channel(duck)
    assert (channel.name, channel.medium, channel.rate, channel.max_in_flight) == (
        "duck",
        None,
        None,
        None,
    )
    assert channel.base_url is None
    assert await channel.send(MESSAGE) == Receipt("duck-1")
    await channel.cancel("duck-1")  # nothing to hang up: a no-op, not an AttributeError
    assert duck.sent == [MESSAGE]
    assert resolve_media({"sms": channel}) == {"sms": Medium.SMS}


def test_something_that_is_not_a_channel_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="is not a channel"):
        as_channel(object())


def test_channel_base_defaults_are_documented_values() -> None:
    base = Channel()
    assert (base.medium, base.rate, base.max_in_flight, base.base_url) == (None, None, None, None)


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_every_adapter_refuses_a_rate_that_cannot_pace(rate: float) -> None:
    from outreach.channels import SendGridEmail, TwilioSMS

    with pytest.raises(ConfigurationError, match="rate must be a positive number"):
        SendGridEmail(api_key="SG.k.k", from_email="a@capeair.example", rate=rate)
    with pytest.raises(ConfigurationError, match="rate must be a positive number"):
        TwilioSMS(account_sid="AC1", auth_token="t", from_="+16175550100", rate=rate)


def test_an_invalid_setting_is_a_configuration_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from outreach.channels import SendGridEmail

    monkeypatch.setenv("OUTREACH_SIGNATURE_MAX_AGE", "soon")
    with pytest.raises(ConfigurationError, match="OUTREACH_SIGNATURE_MAX_AGE"):
        SendGridEmail()
