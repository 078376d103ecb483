"""Notices that need no answer, end to end: the real adapters, the provider simulator's
receipts and the real webhooks app decide when an apology (``until="delivered"``) or a notice
that wants to be read (``until="engaged"``) has done its job."""

from __future__ import annotations

import pytest

from outreach import Plan, Status, Step
from outreach._models import EventKind, Medium, Until
from outreach.testing import CallBehaviour, EmailBehaviour, Persona, SmsBehaviour

from ._stack import MakeStack, channels_tried, passenger

pytestmark = pytest.mark.integration


def apology(*channels: str, until: Until = "delivered") -> Plan:
    waits = {"sms": "15m", "email": "30m", "voice": "1h"}
    return Plan(
        name="apology",
        steps=[Step(channel=c, template="apology", wait=waits[c]) for c in channels],
        until=until,
    )


async def test_a_delivered_text_is_enough(make_stack: MakeStack) -> None:
    pax = passenger(1)
    assert pax.phone is not None
    assert pax.email is not None
    stack = await make_stack([Persona(phone=pax.phone, email=pax.email)])
    n = await stack.start(pax, plan=apology("sms", "email", "voice"))

    await stack.run_until("3h")
    n = await stack.get(n.key or "")
    assert n.status is Status.DELIVERED
    assert n.reached_by == "sms delivered"
    assert channels_tried(n) == ["sms"]
    assert (len(stack.messages_to(pax.phone)), stack.emails_to(pax.email)) == (1, [])
    assert stack.calls_to(pax.phone) == []
    assert await stack.client.attention(open=False) == []
    stack.assert_webhooks_accepted()


async def test_a_landline_gets_the_email_at_once_and_no_call_once_it_is_delivered(
    make_stack: MakeStack,
) -> None:
    pax = passenger(4)
    assert pax.phone is not None
    assert pax.email is not None
    stack = await make_stack(
        [Persona(phone=pax.phone, email=pax.email, landline=True, on_call=CallBehaviour("human"))]
    )
    n = await stack.start(pax, plan=apology("sms", "email", "voice"))

    await stack.run_until("3h")
    n = await stack.get(n.key or "")
    assert n.status is Status.DELIVERED
    assert n.reached_by == "email delivered"
    assert channels_tried(n) == ["sms", "email"]
    [mail] = stack.emails_to(pax.email)
    assert mail["created_at"] - stack.at("0s") < n.plan.steps[0].wait  # not after the wait
    assert stack.calls_to(pax.phone) == []
    stack.assert_webhooks_accepted()


async def test_voicemail_never_counts_a_person_does(make_stack: MakeStack) -> None:
    machine, person = passenger(6), passenger(7)
    assert machine.phone is not None
    assert machine.email is not None
    assert person.phone is not None
    assert person.email is not None
    stack = await make_stack(
        [
            Persona(phone=machine.phone, email=machine.email, on_call=CallBehaviour("voicemail")),
            Persona(phone=person.phone, email=person.email, on_call=CallBehaviour("human")),
        ]
    )
    left = await stack.start(machine, plan=apology("voice", "email"))
    taken = await stack.start(person, plan=apology("voice", "email"))

    await stack.run_until("3h")
    left = await stack.get(left.key or "")
    assert left.status is Status.DELIVERED
    assert left.reached_by == "email delivered"  # the voicemail did not end it; the email did
    assert channels_tried(left) == ["voice", "email"]
    assert left.attempts[0].error == "voicemail"

    taken = await stack.get(taken.key or "")
    assert taken.status is Status.DELIVERED
    assert taken.reached_by == "voice answered by a person"
    assert channels_tried(taken) == ["voice"]
    assert stack.emails_to(person.email) == []
    [call] = stack.calls_to(person.phone)
    assert call["status"] == "completed"  # the person heard it out: not hung up on
    stack.assert_webhooks_accepted()


async def test_until_engaged_waits_for_the_email_to_be_opened(make_stack: MakeStack) -> None:
    pax = passenger(2)
    assert pax.phone is not None
    assert pax.email is not None
    stack = await make_stack(
        [
            Persona(
                phone=pax.phone,
                email=pax.email,
                on_sms=SmsBehaviour(),
                on_email=EmailBehaviour(opens_after="10m"),
            )
        ]
    )
    n = await stack.start(pax, plan=apology("sms", "email", "voice", until="engaged"))

    await stack.run_until("3h")
    n = await stack.get(n.key or "")
    assert n.status is Status.ENGAGED
    assert n.reached_by == "email opened or clicked"
    assert channels_tried(n) == ["sms", "email"]  # a delivered text was not enough
    assert stack.calls_to(pax.phone) == []
    [ended] = [e for e in await stack.events(n.id) if e.kind is EventKind.ENGAGED]
    [mail] = stack.emails_to(pax.email)
    assert mail["created_at"] >= stack.at("15m")  # the text's whole wait went by first
    assert ended.at > mail["created_at"]
    stack.assert_webhooks_accepted()


async def test_a_stop_is_a_reply_too_it_was_read(make_stack: MakeStack) -> None:
    """``until="engaged"``: the customer who replies STOP has read the text; no more texts go
    to them, and the notice does not go on to email them."""
    pax = passenger(3)
    assert pax.phone is not None
    assert pax.email is not None
    stack = await make_stack(
        [Persona(phone=pax.phone, email=pax.email, on_sms=SmsBehaviour(reply="STOP"))]
    )
    n = await stack.start(pax, plan=apology("sms", "email", until="engaged"))

    await stack.run_until("2h")
    n = await stack.get(n.key or "")
    assert (n.status, n.reached_by) == (Status.ENGAGED, "sms opt-out")
    assert stack.emails_to(pax.email) == []
    assert await stack.client.store.opted_out([(Medium.SMS, pax.phone)])
    stack.assert_webhooks_accepted()
