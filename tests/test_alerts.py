"""A channel that watches itself: a spike of one failure code raises an alert once per episode,
and clears (saying so) when the code's share falls back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from outreach import (
    AlertThresholds,
    AsyncClient,
    AttemptStatus,
    ChannelAlert,
    Hooks,
    Plan,
    Recipient,
    Step,
)
from outreach._alerts import ChannelWatch, failure_code
from outreach.demo import templates_dir as demo_templates
from outreach.exceptions import ConfigurationError, PermanentDeliveryError
from outreach.testing import FakeClock, InMemoryChannel, Persona, Sandbox, SmsBehaviour

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        ("undelivered", "Twilio 30034: sender number not registered for A2P 10DLC", "Twilio 30034"),
        ("undelivered", "Twilio error 30999", "Twilio 30999"),
        (
            "failed",
            "ConfigurationError: sms: Twilio rejected the credentials (HTTP 401, error 20003)",
            "HTTP 401",
        ),
        ("skipped", "ConfigurationError: sendgrid: HTTP 403 Forbidden; check the key", "HTTP 403"),
        (
            "failed",
            "PermanentDeliveryError: sms: Twilio refused the request (HTTP 400, error 21211)",
            "Twilio 21211",
        ),
        ("failed", "TransientDeliveryError: email: SendGrid answered HTTP 503", "HTTP 503"),
        ("undelivered", "bounce (blocked): 550 5.7.1 rejected [5.5.0]", "bounce"),
        ("undelivered", "dropped: Bounced Address", "dropped"),
        ("failed", "TransientDeliveryError: sms: cannot reach Twilio", "TransientDeliveryError"),
        ("failed", None, "failed"),
        ("undelivered", "", "undelivered"),
        ("undelivered", "!!! 42", "undelivered"),
        ("delivered", None, None),
        ("sent", None, None),
        ("engaged", "voicemail", None),
        ("skipped", None, None),  # no address, opted out: not a send, not a failure
    ],
)
def test_failure_codes_name_the_kind_of_failure(
    status: str, error: str | None, code: str | None
) -> None:
    assert failure_code(AttemptStatus(status), error) == code


def feed(watch: ChannelWatch, codes: list[str | None], *, start: int = 0) -> list[ChannelAlert]:
    alerts = []
    for number, code in enumerate(codes, start):
        alerts += watch.record("sms", f"a{number}", code, T0)
    return alerts


def test_a_spike_alerts_once_per_episode_and_clears_once() -> None:
    watch = ChannelWatch(AlertThresholds(window=10, min_sample=4, ratio=0.5))
    assert feed(watch, [None] * 4) == []
    assert feed(watch, ["Twilio 30034"] * 4, start=4) == []  # 4 of 8: not more than half
    [raised] = feed(watch, ["Twilio 30034"], start=8)
    assert (raised.channel, raised.code, raised.cleared) == ("sms", "Twilio 30034", False)
    assert (raised.failures, raised.sample, raised.rate) == (5, 9, pytest.approx(5 / 9))
    assert feed(watch, ["Twilio 30034"] * 20, start=9) == []  # the same episode: no repeat
    assert watch.alerting("sms") == {"Twilio 30034"}
    # Healthy sends push the wave out of the window: it clears at a quarter (half the ratio).
    cleared = feed(watch, [None] * 10, start=100)
    [end] = cleared
    assert (end.code, end.cleared, end.failures, end.sample) == ("Twilio 30034", True, 2, 10)
    assert watch.alerting("sms") == frozenset()
    assert feed(watch, ["Twilio 30034"] * 6, start=200)[0].cleared is False  # a new episode


def test_a_later_report_on_an_attempt_replaces_its_outcome() -> None:
    watch = ChannelWatch(AlertThresholds(window=4, min_sample=4))
    feed(watch, [None] * 4)  # four texts Twilio took
    assert watch.record("sms", "a0", "Twilio 30034", T0) == []
    assert watch.record("sms", "a1", "Twilio 30034", T0) == []  # 2 of 4, not more than half
    [alert] = watch.record("sms", "a2", "Twilio 30034", T0)
    assert (alert.failures, alert.sample) == (3, 4)


def test_no_alert_below_the_minimum_sample() -> None:
    watch = ChannelWatch(AlertThresholds(window=50, min_sample=10))
    assert feed(watch, ["HTTP 401"] * 9) == []
    [alert] = feed(watch, ["HTTP 401"], start=9)
    assert alert.rate == 1.0


def test_codes_and_channels_are_counted_apart() -> None:
    watch = ChannelWatch(AlertThresholds(window=10, min_sample=10))
    # 60% failures, but of three kinds, none of them more than half.
    assert feed(watch, ["Twilio 30003", "Twilio 30005", "Twilio 30006", None, None] * 2) == []
    for number in range(10):
        assert watch.record("email", f"e{number}", None, T0) == []
    assert watch.alerting("email") == frozenset()


def test_alerts_and_clearings_are_logged_with_the_code_and_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = ChannelWatch(AlertThresholds(window=4, min_sample=2, clear_ratio=0.0))
    with caplog.at_level(logging.WARNING, logger="outreach.alerts"):
        feed(watch, ["bounce", "bounce"])
        feed(watch, [None] * 4, start=10)
    raised, cleared = caplog.records
    assert (raised.levelno, raised.name) == (logging.ERROR, "outreach.alerts")
    assert raised.getMessage() == (
        "channel 'sms' failing: bounce on 2 of the last 2 attempts (100%)"
    )
    assert cleared.levelno == logging.WARNING
    assert cleared.getMessage() == (
        "channel 'sms' back to normal: bounce on 0 of the last 4 attempts (0%)"
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"window": 0}, "window"),
        ({"min_sample": 0}, "min_sample"),
        ({"window": 5, "min_sample": 6}, "min_sample"),
        ({"ratio": 1.0}, "ratio"),
        ({"ratio": 0}, "ratio"),
        ({"ratio": 0.5, "clear_ratio": 0.5}, "clear_ratio"),
        ({"clear_ratio": -0.1}, "clear_ratio"),
    ],
)
def test_nonsense_thresholds_are_refused_by_name(options: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=f"AlertThresholds.{field} must"):
        AlertThresholds(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": "50"}, "AlertThresholds.window must be an integer, not '50'"),
        ({"min_sample": 2.5}, "AlertThresholds.min_sample must be an integer, not 2.5"),
        ({"ratio": "half"}, "AlertThresholds.ratio must be a number, not 'half'"),
        ({"clear_ratio": True}, "AlertThresholds.clear_ratio must be a number, not True"),
    ],
)
def test_thresholds_of_the_wrong_type_are_refused_by_name(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError) as refused:
        AlertThresholds(**options)  # type: ignore[arg-type]
    assert str(refused.value) == message


# -- through the client ---------------------------------------------------------------------

SMS_ONLY = Plan(name="sms-only", steps=[Step(channel="sms", template="flight_cancelled")])


def pax(number: int) -> Recipient:
    return Recipient(id=f"pax-{number}", phone=f"+1617555{number:04d}", timezone="UTC")


async def test_refused_sends_raise_the_hook_once_and_its_clearing(
    templates_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[ChannelAlert] = []
    cleared: list[ChannelAlert] = []

    def broken_hook(alert: ChannelAlert) -> None:
        raised.append(alert)
        raise RuntimeError("the pager is down")  # logged, changes nothing

    sms = InMemoryChannel(name="sms")
    sms.fail_next(
        8,
        error=PermanentDeliveryError("sms: Twilio refused the request (HTTP 400, error 21610)"),
    )
    async with AsyncClient(
        store="memory://",
        channels={"sms": sms},
        templates=templates_dir,
        clock=FakeClock("2026-11-23T14:00:00+00:00"),
        hooks=Hooks(on_channel_alert=broken_hook, on_channel_alert_cleared=cleared.append),
        channel_alerts=AlertThresholds(window=10, min_sample=5, ratio=0.5),
    ) as ox:
        for number in range(8):
            await ox.start(pax(number), SMS_ONLY, context={"flight": "9K 1042"})
        with caplog.at_level(logging.ERROR):
            await ox.run_due()
        [alert] = raised
        assert (alert.channel, alert.code, alert.cleared) == ("sms", "Twilio 21610", False)
        assert (alert.failures, alert.sample) == (5, 5)
        assert alert.at == ox.clock.now()
        assert any(
            "Twilio 21610 on 5 of the last 5 attempts (100%)" in r.getMessage()
            for r in caplog.records
            if r.name == "outreach.alerts" and r.levelno == logging.ERROR
        )
        assert any(r.name == "outreach.hooks" for r in caplog.records)  # the hook's failure
        assert cleared == []
        for number in range(8, 20):
            await ox.start(pax(number), SMS_ONLY, context={"flight": "9K 1042"})
        await ox.run_due()
    assert len(sms.outbox) == 12  # every other customer got their text
    [end] = cleared
    assert (end.code, end.cleared) == ("Twilio 21610", True)
    assert end.failures / end.sample <= 0.25
    assert len(raised) == 1


# -- end to end: a wave of 30034s through the provider simulator and the real webhooks app ----


@pytest.mark.integration
async def test_a_wave_of_10dlc_rejections_alerts_once_and_clears(tmp_path: Path) -> None:
    """Twenty texts come back undelivered with Twilio 30034 (the sender is not registered for
    A2P 10DLC) in the simulator's status callbacks; then the next twenty are delivered."""
    raised: list[ChannelAlert] = []
    cleared: list[ChannelAlert] = []
    wave = [pax(100 + n) for n in range(20)]
    healthy = [pax(200 + n) for n in range(20)]
    personas = [
        *(Persona(phone=p.phone, on_sms=SmsBehaviour(undelivered=30034)) for p in wave),
        *(Persona(phone=p.phone) for p in healthy),
    ]
    async with Sandbox(
        store=f"sqlite:///{tmp_path / 'outreach.db'}",
        templates=demo_templates(),
        personas=personas,
        start="2026-11-23T15:00:00+00:00",
        hooks=Hooks(on_channel_alert=raised.append, on_channel_alert_cleared=cleared.append),
        channel_alerts=AlertThresholds(window=20, min_sample=10, ratio=0.5),
    ) as box:
        for recipient in wave:
            await box.client.start(recipient, SMS_ONLY, context={"flight": "9K 1042"})
        await box.run_until("5m")
        reports = [c for c in box.sim.callbacks if c["kind"] == "sms-status"]
        assert {c["params"]["ErrorCode"] for c in reports if c["params"].get("ErrorCode")} == {
            "30034"
        }
        [alert] = raised
        assert (alert.channel, alert.code) == ("sms", "Twilio 30034")
        # The moment more than half of what came back (at least 10) was undelivered: how many
        # had come back by then depends on how the paced sends and their callbacks interleave.
        assert alert.sample >= 10
        assert alert.failures > alert.sample / 2
        assert alert.rate == pytest.approx(alert.failures / alert.sample)
        assert cleared == []

        for recipient in healthy:
            await box.client.start(recipient, SMS_ONLY, context={"flight": "9K 1042"})
        await box.run_until("10m")
        statuses = {m["status"] for m in box.sim.messages if m["to"] in {p.phone for p in healthy}}
        assert statuses == {"delivered"}
    assert len(raised) == 1
    [end] = cleared
    assert (end.channel, end.code, end.cleared) == ("sms", "Twilio 30034", True)
    assert end.failures / end.sample <= 0.25


async def test_revoked_credentials_on_concurrent_sends_raise_an_http_401_alert(
    templates_dir: Path,
) -> None:
    """Sends already handed over when the first 401 switched the channel off fail the same
    way: a burst of 401s is one alert, on top of the switch-off's ``on_channel_error``."""
    raised: list[ChannelAlert] = []
    errors: list[str] = []
    sms = InMemoryChannel(name="sms")
    sms.fail_next(
        12,
        error=ConfigurationError(
            "sms: Twilio rejected the credentials (HTTP 401, error 20003): check the token"
        ),
    )
    async with AsyncClient(
        store="memory://",
        channels={"sms": sms},
        templates=templates_dir,
        clock=FakeClock("2026-11-23T14:00:00+00:00"),
        hooks=Hooks(
            on_channel_alert=raised.append,
            on_channel_error=lambda channel, error: errors.append(channel),
        ),
        channel_alerts=AlertThresholds(window=20, min_sample=10),
    ) as ox:
        for number in range(12):
            await ox.start(pax(number), SMS_ONLY, context={"flight": "9K 1042"})
        await ox.run_due()
    assert errors == ["sms"]  # switched off once
    [alert] = raised
    assert (alert.code, alert.failures, alert.sample) == ("HTTP 401", 10, 10)
