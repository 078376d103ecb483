"""Provider trouble over real HTTP: a 429 burst, a 5xx outage with a second provider, and a
connection lost after the provider took the request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from outreach import AttemptStatus, EventKind, StartRequest, Status
from outreach.channels import Channel, Failover
from outreach.channels.sendgrid import SendGridEmail
from outreach.channels.twilio import TwilioSMS, TwilioVoice
from outreach.testing import CallBehaviour, Persona, ProviderSimulator, SmsBehaviour

from ._stack import (
    OUR_NUMBER,
    SECRET,
    SENDER,
    START,
    MakeStack,
    by_step,
    passenger,
)

pytestmark = pytest.mark.integration

BACKUP_NUMBER = "+15085550142"
"""The sender number of the second Twilio account."""


async def test_a_429_burst_is_absorbed_without_losing_or_duplicating_a_text(
    make_stack: MakeStack,
) -> None:
    passengers = [passenger(n) for n in range(11, 16)]
    phones = [p.phone or "" for p in passengers]
    stack = await make_stack()
    stack.sim.fail_next(7, status=429, retry_after=2, channel="sms")
    started = await stack.client.start_many(
        stack.plan,
        [StartRequest(p, key=f"9K1042/{p.id}") for p in passengers],
        context={"flight": "9K 1042"},
        campaign="9K1042",
    )

    await stack.run_until("5m")
    requests = stack.sms_requests()
    refused = [r for r in requests if r["fault"] is not None]
    assert [(r["fault"], r["status"]) for r in refused] == [("HTTP 429", 429)] * 7
    assert [r["status"] for r in requests if r["fault"] is None] == [201] * len(passengers)
    # Every passenger got exactly one text: none lost to the burst, none sent twice.
    assert sorted(m["to"] for m in stack.sim.messages) == sorted(phones)
    assert all(m["status"] == "delivered" for m in stack.sim.messages)
    assert max(m["created_at"] for m in stack.sim.messages) - START < stack.plan.steps[0].wait
    assert stack.sim.emails == []  # a rate limit is no reason to escalate

    rate_limited = 0
    for n in started:
        n = await stack.get(n.key or "")
        assert n.status is Status.ACTIVE
        attempts = by_step(n, 0)
        assert [a.reattempt for a in attempts] == list(range(len(attempts)))
        *failed, last = attempts
        [message] = stack.messages_to(n.recipient.phone or "")
        assert last.status is AttemptStatus.DELIVERED
        assert last.provider_id == message["sid"]
        assert last.sent_at == message["created_at"]
        for attempt, following in zip(failed, attempts[1:], strict=True):
            assert attempt.status is AttemptStatus.FAILED
            assert attempt.provider_id is None
            assert attempt.error is not None
            assert "429" in attempt.error
            assert attempt.retry_at is not None
            assert following.created_at >= attempt.retry_at  # Retry-After was respected
        log = [
            e
            for e in await stack.events(n.id)
            if e.kind is EventKind.ATTEMPT and e.data.get("failure") is not None
        ]
        assert [e.data["failure"] for e in log] == ["rate_limited"] * len(failed)
        assert [e.attempt_id for e in log] == [a.id for a in failed]
        rate_limited += len(failed)
    assert rate_limited == 7
    stack.assert_webhooks_accepted()


def _failover_channels(sims: Sequence[ProviderSimulator]) -> Mapping[str, Channel]:
    """SMS through the first Twilio account, else through a second one (its own simulator)."""
    primary, backup = sims
    settings = primary.settings(secret_key=SECRET, twilio_from=OUR_NUMBER, sendgrid_from=SENDER)
    return {
        "sms": Failover(
            TwilioSMS(settings=settings, name="twilio-main"),
            TwilioSMS(settings=backup.settings(twilio_from=BACKUP_NUMBER), name="twilio-backup"),
        ),
        "email": SendGridEmail(settings=settings),
        "voice": TwilioVoice(settings=settings),
    }


@pytest.mark.parametrize("status", [500, 503])
async def test_a_5xx_on_sms_fails_over_to_the_second_provider(
    make_stack: MakeStack, status: int
) -> None:
    pax = passenger(21)
    phone = pax.phone or ""
    stack = await make_stack(
        [Persona(phone=phone, on_sms=SmsBehaviour(reply="2", reply_after="3m"))],
        simulators=2,
        channels=_failover_channels,
    )
    primary, backup = stack.sims
    assert primary.account_sid != backup.account_sid
    primary.fail_next(1, status=status, channel="sms")
    n = await stack.start(pax)

    await stack.run_until("1m")
    [refused] = stack.sms_requests(primary)
    assert (refused["fault"], refused["status"]) == (f"HTTP {status}", status)
    assert primary.messages == []
    [sms] = backup.messages
    assert (sms["to"], sms["from"]) == (phone, BACKUP_NUMBER)
    assert sms["created_at"] == START  # at once, not after a retry delay
    n = await stack.get(n.key or "")
    [attempt] = by_step(n, 0)
    assert attempt.status is AttemptStatus.DELIVERED  # the backup's signed callbacks count
    assert attempt.provider_id == sms["sid"]
    assert attempt.sender == BACKUP_NUMBER
    assert attempt.tries == 1
    assert attempt.error is None
    statuses = [c["params"]["MessageStatus"] for c in backup.callbacks if c["kind"] == "sms-status"]
    assert statuses == ["sent", "delivered"]

    # The passenger answers the backup number; the answer is matched and acknowledged.
    await stack.run_until("10m")
    [inbound] = [c for c in backup.callbacks if c["kind"] == "sms-inbound"]
    assert (inbound["params"]["From"], inbound["params"]["To"]) == (phone, BACKUP_NUMBER)
    [confirmation] = backup.auto_replies
    assert "Refund" in confirmation["body"]
    n = await stack.get(n.key or "")
    assert n.status is Status.ACKNOWLEDGED
    assert (n.choice, n.acknowledged_via) == ("2", "sms")
    assert len(stack.sms_requests()) == 2
    assert stack.emails_to(pax.email or "") == []
    stack.assert_webhooks_accepted()


async def test_a_connection_lost_after_twilio_took_the_text_is_not_resent(
    make_stack: MakeStack,
) -> None:
    pax = passenger(31)
    phone = pax.phone or ""
    stack = await make_stack(
        [Persona(phone=phone, on_sms=SmsBehaviour(reply="1", reply_after="5m"))]
    )
    stack.sim.drop_next(1, processed=True, channel="sms")
    n = await stack.start(pax)

    await stack.run_until(START)  # the send, and nothing the provider does after it
    [request] = stack.sms_requests()
    assert (request["fault"], request["status"]) == ("drop", None)  # no answer came back
    [sms] = stack.messages_to(phone)  # ... but Twilio has the message
    n = await stack.get(n.key or "")
    [attempt] = by_step(n, 0)
    assert attempt.status is AttemptStatus.UNKNOWN
    assert attempt.provider_id is None
    assert attempt.sent_at == START  # the wait for an answer runs from the send

    # The status callbacks (addressed to the attempt) tell what happened; nothing is resent.
    await stack.run_until("1m")
    n = await stack.get(n.key or "")
    [attempt] = by_step(n, 0)
    assert attempt.status is AttemptStatus.DELIVERED
    assert [c["params"]["MessageSid"] for c in stack.callbacks("sms-status")] == [sms["sid"]] * 2
    status_log = [
        e.data["status"]
        for e in await stack.events(n.id)
        if e.kind is EventKind.ATTEMPT_STATUS and e.attempt_id == attempt.id
    ]
    assert status_log == [AttemptStatus.SENT, AttemptStatus.DELIVERED]

    # The passenger's answer to that text is matched to it.
    await stack.run_until("1h")
    n = await stack.get(n.key or "")
    assert n.status is Status.ACKNOWLEDGED
    assert (n.choice, n.acknowledged_via) == ("1", "sms")
    assert n.acknowledged_at == stack.at("5m3s")
    assert len(stack.sms_requests()) == 1
    assert stack.messages_to(phone) == [sms | {"status": "delivered"}]
    assert stack.emails_to(pax.email or "") == []
    assert stack.calls_to(phone) == []
    stack.assert_webhooks_accepted()


async def test_a_call_whose_answer_was_lost_is_still_hung_up_on_acknowledgement(
    make_stack: MakeStack,
) -> None:
    pax = passenger(32)
    phone = pax.phone or ""
    stack = await make_stack(
        [
            Persona(
                phone=phone,
                on_sms=SmsBehaviour(reply="1", reply_after="45m7s"),  # while the call rings
                on_call=CallBehaviour(answer="human", ring_for="40s"),
            )
        ]
    )
    n = await stack.start(pax)
    await stack.run_until("44m59s")
    stack.sim.drop_next(1, processed=True, channel="voice")

    await stack.run_until("2h")
    [call] = stack.calls_to(phone)
    assert call["created_at"] == stack.at("45m")
    [inbound] = stack.callbacks("sms-inbound")
    n = await stack.get(n.key or "")
    assert n.status is Status.ACKNOWLEDGED
    assert n.acknowledged_at == inbound["at"]
    assert call["answered_at"] is None  # hung up while it rang, as when the answer arrives
    assert call["ended_at"] == inbound["at"]
    [call_attempt] = by_step(n, 2)
    assert call_attempt.provider_id == call["sid"]  # learnt from the status callbacks
