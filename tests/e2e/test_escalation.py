"""How the escalation reacts to what really happens to a message: an undelivered text, a STOP,
a voicemail box, a bounce, an answer by email while the text's wait runs."""

from __future__ import annotations

import pytest

from outreach import AttemptStatus, EventKind, Plan, Status, Step
from outreach.testing import CallBehaviour, EmailBehaviour, Persona, SmsBehaviour

from ._stack import START, MakeStack, by_step, cape_air_plan, channels_tried, passenger

pytestmark = pytest.mark.integration


def _phone_and_email(number: int) -> tuple[str, str]:
    pax = passenger(number)
    assert pax.phone is not None
    assert pax.email is not None
    return pax.phone, pax.email


async def test_an_undelivered_text_escalates_to_email_at_once(make_stack: MakeStack) -> None:
    pax = passenger(2)
    phone, email = _phone_and_email(2)
    stack = await make_stack([Persona(phone=phone, on_sms=SmsBehaviour(undelivered=30003))])
    n = await stack.start(pax)

    await stack.run_until("1m")
    [sms] = stack.messages_to(phone)
    assert sms["status"] == "undelivered"
    assert sms["error_code"] == 30003
    [undelivered] = [
        c for c in stack.callbacks("sms-status") if c["params"]["MessageStatus"] == "undelivered"
    ]
    assert undelivered["params"]["ErrorCode"] == "30003"
    # The email went the moment the carrier's report arrived, not 15 minutes after the text.
    [mail] = stack.emails_to(email)
    assert mail["created_at"] == undelivered["at"]
    assert mail["created_at"] - START < stack.plan.steps[0].wait

    n = await stack.get(n.key or "")
    assert n.status is Status.ACTIVE
    [sms_attempt] = by_step(n, 0)
    assert sms_attempt.status is AttemptStatus.UNDELIVERED
    assert sms_attempt.provider_id == sms["sid"]
    assert sms_attempt.error is not None
    assert "30003" in sms_attempt.error
    [email_attempt] = by_step(n, 1)
    assert email_attempt.sent_at == undelivered["at"]
    assert email_attempt.provider_id == mail["message_id"]
    statuses = [
        e.data["status"]
        for e in await stack.events(n.id)
        if e.kind is EventKind.ATTEMPT_STATUS and e.attempt_id == sms_attempt.id
    ]
    assert statuses[-1] == AttemptStatus.UNDELIVERED
    # Nothing was resent by text.
    assert len(stack.sms_requests()) == 1
    stack.assert_webhooks_accepted()


async def test_stop_is_honoured_by_this_and_every_later_notification(
    make_stack: MakeStack,
) -> None:
    pax = passenger(3)
    phone, email = _phone_and_email(3)
    stack = await make_stack(
        [Persona(phone=phone, email=email, on_sms=SmsBehaviour(reply="STOP", reply_after="2m"))]
    )
    first = await stack.start(pax, key="9K1042/pax-03")

    await stack.run_until("10m")
    [sms] = stack.messages_to(phone)
    [inbound] = stack.callbacks("sms-inbound")
    assert inbound["params"]["Body"] == "STOP"
    assert inbound["at"] == stack.at("2m3s")  # delivered after 3 s, answered 2 min later
    [confirmation] = stack.sim.auto_replies
    assert confirmation["source"] == "twilio"  # Twilio's own STOP answer, none of ours
    # The notification did not wait out the text's 15 minutes: the email went on STOP.
    [mail] = stack.emails_to(email)
    assert mail["created_at"] == inbound["at"]

    first = await stack.get(first.key or "")
    assert first.status is Status.ACTIVE
    [sms_attempt] = by_step(first, 0)
    assert sms_attempt.provider_id == sms["sid"]
    kinds = await stack.kinds(first.id)
    assert EventKind.OPTED_OUT in kinds
    assert EventKind.ACKNOWLEDGED not in kinds  # STOP is not an answer
    [reply] = [e for e in await stack.events(first.id) if e.kind is EventKind.REPLY]
    assert reply.data["text"] == "STOP"
    assert reply.attempt_id == sms_attempt.id

    # A later notice to the same passenger (another flight): no text, the email at once.
    clock_then = stack.clock.now()
    second = await stack.start(
        pax, key="9K2077/pax-03", context={"flight": "9K 2077"}, plan=stack.plan
    )
    await stack.run_until("1d")
    second = await stack.get(second.key or "")
    [skipped] = by_step(second, 0)
    assert skipped.status is AttemptStatus.SKIPPED
    assert skipped.error is not None
    assert "opted out" in skipped.error
    [_, second_mail] = stack.emails_to(email)
    assert second_mail["created_at"] == clock_then
    assert "9K 2077" in second_mail["subject"] + second_mail["text"]

    # Not one more request to send a text to that number: we held back, not Twilio (21610).
    assert len(stack.sms_requests()) == 1
    assert stack.messages_to(phone) == [sms]
    for n in (first, second):
        n = await stack.get(n.key or "")
        assert channels_tried(n) == ["sms", "email", "voice"]
        assert n.status is Status.EXHAUSTED  # the calls rang out unanswered
    assert len(stack.calls_to(phone)) == 2
    stack.assert_webhooks_accepted()


async def test_a_voicemail_box_is_not_an_acknowledgement(make_stack: MakeStack) -> None:
    pax = passenger(4)
    phone, email = _phone_and_email(4)
    stack = await make_stack([Persona(phone=phone, on_call=CallBehaviour(answer="voicemail"))])
    n = await stack.start(pax)

    await stack.run_until("50m")
    [call] = stack.calls_to(phone)
    assert call["created_at"] == stack.at("45m")
    assert call["answered_by"] == "machine_end_beep"
    assert call["digits"] == []
    [script] = call["twiml"]
    assert "9K 1042" in script
    assert "<Gather" not in script  # a message for the recording, no menu
    assert call["status"] == "completed"

    n = await stack.get(n.key or "")
    assert n.status is Status.ACTIVE  # still waiting for an answer
    assert n.acknowledged_at is None
    [call_attempt] = by_step(n, 2)
    assert call_attempt.status is AttemptStatus.ENGAGED
    assert call_attempt.error == "voicemail"
    assert call_attempt.provider_id == call["sid"]

    await stack.run_until("1d")
    n = await stack.get(n.key or "")
    assert n.status is Status.EXHAUSTED
    assert n.finished_at == stack.at("1h45m")  # the call's hour of waiting ran out
    assert n.choice is None
    kinds = await stack.kinds(n.id)
    assert EventKind.ACKNOWLEDGED not in kinds
    assert EventKind.FOLLOW_UP_STARTED not in kinds
    assert len(await stack.client.list(campaign="9K1042")) == 1
    assert len(stack.messages_to(phone)) == 1
    assert len(stack.emails_to(email)) == 1
    assert len(stack.calls_to(phone)) == 1
    stack.assert_webhooks_accepted()


async def test_a_bounced_email_escalates_to_the_call_at_once(make_stack: MakeStack) -> None:
    pax = passenger(5)
    phone, email = _phone_and_email(5)
    stack = await make_stack(
        [
            Persona(
                phone=phone,
                email=email,
                on_email=EmailBehaviour(delivery="bounce"),
                on_call=CallBehaviour(answer="human", press="1"),
            )
        ]
    )
    n = await stack.start(pax)

    await stack.run_until("20m")
    [mail] = stack.emails_to(email)
    assert mail["created_at"] == stack.at("15m")
    [bounce] = [e for e in stack.sim.email_events if e["event"] == "bounce"]
    assert bounce["email"] == email
    # The call went when the bounce was reported, not 30 minutes after the email.
    [call] = stack.calls_to(phone)
    assert call["created_at"] == stack.at("15m5s")

    n = await stack.get(n.key or "")
    [email_attempt] = by_step(n, 1)
    assert email_attempt.status is AttemptStatus.UNDELIVERED
    assert email_attempt.error is not None
    assert email_attempt.error.startswith("bounce")
    assert "5.1.1" in email_attempt.error
    [call_attempt] = by_step(n, 2)
    assert call_attempt.provider_id == call["sid"]
    assert call_attempt.sent_at == stack.at("15m5s")
    # ... and the passenger took it and chose to rebook.
    assert n.status is Status.ACKNOWLEDGED
    assert (n.choice, n.acknowledged_via) == ("1", "voice")
    assert call["digits"] == ["1"]
    stack.assert_webhooks_accepted()


async def test_an_answer_by_email_link_ends_the_wait_for_a_text(make_stack: MakeStack) -> None:
    """Email first, then a text; the customer answers the email while the text's wait runs."""
    pax = passenger(6)
    phone, email = _phone_and_email(6)
    cape_air = cape_air_plan()
    plan = Plan(
        name="email-first",
        steps=(
            Step(channel="email", template="flight_cancelled", wait="5m"),
            Step(channel="sms", template="flight_cancelled", wait="15m"),
            Step(channel="voice", template="flight_cancelled", wait="1h"),
        ),
        options=cape_air.options,
        deadline="24h",
        quiet_hours=cape_air.quiet_hours,
    )
    stack = await make_stack(
        [Persona(email=email, on_email=EmailBehaviour(choose="1", clicks_after="10m"))], plan=plan
    )
    n = await stack.start(pax)

    await stack.run_until("10m")  # the text is out, its 15 minutes are running
    [mail] = stack.emails_to(email)
    assert mail["created_at"] == START
    [sms] = stack.messages_to(phone)
    assert sms["created_at"] == stack.at("5m")
    assert (await stack.get(n.key or "")).status is Status.ACTIVE

    await stack.run_until("3h")
    [page] = stack.callbacks("ack-page")
    [submit] = stack.callbacks("ack-submit")
    assert page["method"] == "GET"
    assert page["at"] == stack.at("10m5s")  # delivered after 5 s, clicked 10 min later
    assert submit["params"]["choice"] == "1"
    assert "Rebook me" in submit["response"]
    assert [e["event"] for e in stack.sim.email_events if e["event"] in ("open", "click")] == [
        "open",
        "click",
    ]

    n = await stack.get(n.key or "")
    assert n.status is Status.ACKNOWLEDGED
    assert (n.choice, n.acknowledged_via) == ("1", "email")
    assert n.acknowledged_at == submit["at"]
    [email_attempt] = by_step(n, 0)
    [sms_attempt] = by_step(n, 1)
    assert sms_attempt.status is AttemptStatus.DELIVERED
    assert sms_attempt.provider_id == sms["sid"]
    [ack] = [e for e in await stack.events(n.id) if e.kind is EventKind.ACKNOWLEDGED]
    assert ack.attempt_id == email_attempt.id
    # The wait ended: no call, nothing more sent, and the acknowledgement page now says so.
    assert stack.calls_to(phone) == []
    assert channels_tried(n) == ["email", "sms"]
    assert len(stack.messages_to(phone)) == 1
    assert len(stack.emails_to(email)) == 1
    stack.assert_webhooks_accepted()


async def test_an_answer_by_text_hangs_up_the_ringing_call(make_stack: MakeStack) -> None:
    pax = passenger(7)
    phone, email = _phone_and_email(7)
    stack = await make_stack(
        [
            Persona(
                phone=phone,
                # The answer to the first text comes late: while the call rings.
                on_sms=SmsBehaviour(reply="3", reply_after="45m7s"),
                on_call=CallBehaviour(answer="human", ring_for="40s", press="1"),
            )
        ]
    )
    n = await stack.start(pax)

    await stack.run_until("2h")
    [inbound] = stack.callbacks("sms-inbound")
    assert inbound["at"] == stack.at("45m10s")
    [call] = stack.calls_to(phone)
    assert call["created_at"] == stack.at("45m")
    assert call["answered_at"] is None  # hung up before anyone picked up
    assert call["ended_at"] == inbound["at"]
    assert call["digits"] == []
    assert call["twiml"] == []

    n = await stack.get(n.key or "")
    assert n.status is Status.ACKNOWLEDGED
    assert (n.choice, n.acknowledged_via) == ("3", "sms")
    assert n.acknowledged_at == inbound["at"]
    [sms_attempt] = by_step(n, 0)
    [ack] = [e for e in await stack.events(n.id) if e.kind is EventKind.ACKNOWLEDGED]
    assert ack.attempt_id == sms_attempt.id
    assert channels_tried(n) == ["sms", "email", "voice"]
    assert len(stack.messages_to(phone)) == 1
    assert len(stack.emails_to(email)) == 1
    stack.assert_webhooks_accepted()


async def test_attempts_are_listed_in_the_order_they_were_made(make_stack: MakeStack) -> None:
    pax = passenger(8)
    phone, _ = _phone_and_email(8)
    stack = await make_stack([Persona(phone=phone, on_sms=SmsBehaviour(delivered_after="20m"))])
    n = await stack.start(pax)

    await stack.run_until("30m")
    n = await stack.get(n.key or "")
    assert n.status is Status.ACTIVE
    assert channels_tried(n) == ["sms", "email"]
    assert by_step(n, 0)[0].status is AttemptStatus.DELIVERED  # the late report did arrive
    assert [a.channel for a in n.attempts] == ["sms", "email"]
