"""The Cape Air story over real HTTP: text, email, call answered with a key, refund follow-up."""

from __future__ import annotations

from datetime import timedelta

import pytest

from outreach import AttemptStatus, EventKind, Status
from outreach.testing import CallBehaviour, Persona

from ._stack import START, MakeStack, by_step, channels_tried, passenger

pytestmark = pytest.mark.integration

PAX = passenger(1)
assert PAX.phone is not None
assert PAX.email is not None
PHONE, EMAIL = PAX.phone, PAX.email


async def test_sms_then_email_then_a_call_answered_with_2_then_the_refund_call(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(
        [Persona(phone=PHONE, email=EMAIL, on_call=CallBehaviour(answer="human", press="2"))]
    )
    n = await stack.start(PAX)

    # t0: the text goes at once, and only the text.
    await stack.run_until("14m59s")
    [sms] = stack.messages_to(PHONE)
    assert sms["created_at"] == START
    assert sms["from"] == "+15085550199"
    assert "9K 1042" in sms["body"]
    assert stack.emails_to(EMAIL) == []
    n = await stack.get(n.key or "")
    assert n.status is Status.ACTIVE
    [sms_attempt] = by_step(n, 0)
    assert sms_attempt.status is AttemptStatus.DELIVERED  # from the signed status callbacks
    assert sms_attempt.provider_id == sms["sid"]

    # +15 min: the email, with a working acknowledgement link.
    await stack.run_until("44m59s")
    [email] = stack.emails_to(EMAIL)
    assert email["created_at"] == stack.at("15m")
    assert "/ack/" in email["text"]
    assert stack.calls_to(PHONE) == []
    n = await stack.get(n.key or "")
    [email_attempt] = by_step(n, 1)
    assert email_attempt.status is AttemptStatus.DELIVERED
    assert email_attempt.provider_id == email["message_id"]

    # +45 min: the call; the passenger listens and presses 2 (refund).
    await stack.run_until("50m")
    [call] = stack.calls_to(PHONE)
    assert call["created_at"] == stack.at("45m")
    assert call["answered_by"] == "human"
    assert call["digits"] == ["2"]
    assert call["status"] == "completed"
    [gather] = stack.callbacks("call-gather")
    assert gather["params"]["Digits"] == "2"
    assert "Refund" in gather["response"]  # the confirmation the passenger hears

    n = await stack.get(n.key or "")
    assert n.status is Status.ACKNOWLEDGED
    assert n.choice == "2"
    assert n.acknowledged_via == "voice"
    assert n.acknowledged_at == gather["at"]
    [call_attempt] = by_step(n, 2)
    assert call_attempt.status is AttemptStatus.ENGAGED
    assert call_attempt.provider_id == call["sid"]
    assert call_attempt.error is None  # a person, not a voicemail box
    acks = [e for e in await stack.events(n.id) if e.kind is EventKind.ACKNOWLEDGED]
    assert [(e.attempt_id, e.data["via"], e.data["choice"]) for e in acks] == [
        (call_attempt.id, "voice", "2")
    ]

    follow_up = await stack.get(f"{n.key}/refund_check")
    assert follow_up.parent_id == n.id
    assert follow_up.status is Status.PENDING
    assert follow_up.due_at == n.acknowledged_at + timedelta(days=3)

    # Three days pass: nothing more for the notice, one refund call, nothing after it.
    await stack.run_until("7d")
    assert len(stack.messages_to(PHONE)) == 1
    assert len(stack.emails_to(EMAIL)) == 1
    first, refund_call = stack.calls_to(PHONE)
    assert first["sid"] == call["sid"]
    assert refund_call["created_at"] == n.acknowledged_at + timedelta(days=3)
    assert "refund" in refund_call["twiml"][0]  # the refund_check script was read

    n = await stack.get(n.key or "")
    assert n.status is Status.ACKNOWLEDGED
    assert channels_tried(n) == ["sms", "email", "voice"]
    follow_up = await stack.get(follow_up.key or "")
    [refund_attempt] = follow_up.attempts
    assert refund_attempt.channel == "voice"
    assert refund_attempt.provider_id == refund_call["sid"]
    assert follow_up.status.is_terminal
    assert await stack.client.list(status=Status.ACTIVE) == []
    assert await stack.client.list(status=Status.PENDING) == []
    stack.assert_webhooks_accepted()
