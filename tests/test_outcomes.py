"""Truthful reasons: one function puts every outcome into words (``outreach.outcomes``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from outreach import (
    Attempt,
    AttemptStatus,
    Event,
    EventKind,
    Notification,
    Option,
    Plan,
    Recipient,
    Status,
    Step,
)
from outreach.outcomes import attempt_reason, describe, describe_event, never_reached

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PLAN = Plan(
    name="p",
    steps=[Step(channel="sms", template="t"), Step(channel="voice", template="t")],
    options=[Option(key="1", label="Rebook me"), Option(key="2", label="Not yet", handoff=True)],
)


def attempt(
    channel: str, status: AttemptStatus, error: str | None, *, sent: bool = True
) -> Attempt:
    return Attempt(
        id=f"n.0.{channel}.0",
        notification_id="n",
        pass_=0,
        step=0,
        channel=channel,
        status=status,
        error=error,
        created_at=NOW,
        sent_at=NOW if sent else None,
        updated_at=NOW,
    )


def notification(*attempts: Attempt, **changes: object) -> Notification:
    n = Notification(
        id="n",
        recipient=Recipient(id="r"),
        plan=PLAN,
        created_at=NOW,
        updated_at=NOW,
        attempts=attempts,
        status=Status.EXHAUSTED,
    )
    return n.model_copy(update=changes)


@pytest.mark.parametrize(
    ("channel", "status", "error", "said"),
    [
        (
            "sms",
            AttemptStatus.FAILED,
            "PermanentDeliveryError: Twilio 21614: not a mobile number",
            "sms: a landline",
        ),
        (
            "sms",
            AttemptStatus.UNDELIVERED,
            "Twilio 30006: landline or unreachable carrier",
            "sms: a landline",
        ),
        (
            "sms",
            AttemptStatus.FAILED,
            "PermanentDeliveryError: Twilio 21610: unsubscribed",
            "sms: opted out (STOP)",
        ),
        (
            "sms",
            AttemptStatus.DELIVERED,
            "opted out (replied STOP)",
            "sms: opted out (replied STOP)",
        ),
        ("sms", AttemptStatus.SKIPPED, "the recipient opted out of sms", "sms: opted out"),
        (
            "email",
            AttemptStatus.UNDELIVERED,
            "bounce (blocked): 550 5.7.1 rejected by policy [5.7.1]",
            "email: bounced (550 5.7.1 rejected by policy [5.7.1])",
        ),
        ("voice", AttemptStatus.ENGAGED, "voicemail", "voice: voicemail"),
        ("voice", AttemptStatus.UNDELIVERED, "no answer", "voice: no answer"),
        (
            "sms",
            AttemptStatus.SKIPPED,
            "quiet hours until 08:00 America/New_York, past the deadline",
            "sms: quiet hours until 08:00 America/New_York, past the deadline",
        ),
        (
            "email",
            AttemptStatus.FAILED,
            "TransientDeliveryError: SendGrid answered 503 (retry policy spent: 4 of 4 tries)",
            "email: SendGrid answered 503 (retry policy spent: 4 of 4 tries)",
        ),
        ("sms", AttemptStatus.FAILED, None, "sms: failed"),
    ],
)
def test_each_attempt_says_what_really_happened(
    channel: str, status: AttemptStatus, error: str | None, said: str
) -> None:
    assert attempt_reason(attempt(channel, status, error)) == said


def test_never_reached_puts_a_reply_first_and_silent_channels_last() -> None:
    n = notification(
        attempt("sms", AttemptStatus.DELIVERED, None),
        attempt("voice", AttemptStatus.ENGAGED, "voicemail"),
        last_reply="my bag is lost, and nobody at the desk would tell me where it went",
    )
    assert never_reached(n) == (
        "replied, not understood: 'my bag is lost, and nobody at the desk…'; "
        "voice: voicemail; no answer to sms"
    )
    assert never_reached(notification()) == "nothing could be sent"


def test_describe_names_the_choice_the_ending_or_the_state() -> None:
    acked = notification(status=Status.ACKNOWLEDGED, acknowledged_via="voice", choice="2")
    assert describe(acked) == "acknowledged by voice, chose 2: Not yet (a person takes over)"
    plain = notification(status=Status.ACKNOWLEDGED, acknowledged_via="sms", choice="1")
    assert describe(plain) == "acknowledged by sms, chose 1: Rebook me"
    assert describe(notification(attempt("sms", AttemptStatus.DELIVERED, None))) == (
        "exhausted: no answer to sms"
    )
    assert describe(notification(status=Status.CANCELLED)) == "cancelled"
    active = notification(status=Status.ACTIVE, last_reply="what?")
    assert describe(active) == "active; replied, not understood: 'what?'"


def test_timeline_entries_read_as_sentences() -> None:
    def line(kind: EventKind, **data: object) -> str:
        return describe_event(Event(at=NOW, notification_id="n", kind=kind, data=data))

    assert line(EventKind.REPLY, via="sms", text="call me") == "replied via sms: 'call me'"
    assert line(EventKind.ATTEMPT, channel="sms", status="failed", error="RateLimited: slow") == (
        "sms failed: slow"
    )
    assert (
        line(EventKind.ACKNOWLEDGED, via="voice", choice="2") == "acknowledged via voice, chose 2"
    )
    opened = line(EventKind.ATTENTION_OPENED, attention_id="a1", reason="handoff", detail="chose 2")
    assert opened == "needs a person (handoff): chose 2 [attention a1]"
    resolved = line(EventKind.ATTENTION_RESOLVED, attention_id="a1", by="agent-7", note="done")
    assert resolved == "attention a1 resolved by agent-7: done"
    assert line(EventKind.CANCELLED, reason="flight restored") == "cancelled: flight restored"
