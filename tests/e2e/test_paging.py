"""Paging end to end: a customer needs a person, nobody takes the case within
``respond_within``, the staff are paged through the simulator, and the first to answer — by
SMS, by a key on the call, by the email's link — takes it, through the real webhooks; the
next one to answer is told who has it."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach import Paging, Plan, Recipient, Status, Step
from outreach.demo import DUTY_AGENT, run_story
from outreach.demo._report import summary
from outreach.testing import CallBehaviour, EmailBehaviour, Persona, SmsBehaviour

from ._stack import MakeStack, Stack, passenger

pytestmark = pytest.mark.integration

PAX = passenger(7)
ANA = Recipient(id="agent-ana", phone="+16175550150", email="ana@example.com")
BO = Recipient(id="agent-bo", phone="+16175550151", email="bo@example.com")
CONFUSED = Persona(
    phone=PAX.phone, email=PAX.email, on_sms=SmsBehaviour(reply="my bag is lost, call me")
)


def paging(*steps: Step) -> Paging:
    plan = Plan(name="page", steps=list(steps), urgent=True)
    return Paging(plan=plan, staff=[ANA, BO], respond_within="15m")


SMS_FIRST = paging(
    Step(channel="sms", template="page", wait="5m"),
    Step(channel="email", template="page", wait="5m"),
)


async def needs_a_person(stack: Stack) -> str:
    """The passenger texts back something no option matches: an attention record."""
    await stack.start(PAX)
    await stack.run_until("2m")
    [case] = await stack.client.attention()
    assert case.reason.value == "not_understood"
    return case.id


def answers_to(stack: Stack, phone: str | None) -> list[str]:
    return [r["body"] for r in stack.sim.auto_replies if r["to"] == phone]


async def pages(stack: Stack, case: str) -> dict[str, Status]:
    found = await stack.client.list(campaign=f"attention/{case}")
    return {p.recipient.id: p.status for p in found}


async def test_the_duty_agent_takes_it_by_sms_and_the_other_is_told_who_has_it(
    make_stack: MakeStack,
) -> None:
    staff = [
        Persona(phone=ANA.phone, on_sms=SmsBehaviour(reply="TAKE", reply_after="2m")),
        Persona(phone=BO.phone, on_sms=SmsBehaviour(reply="take", reply_after="3m")),
    ]
    stack = await make_stack([CONFUSED, *staff], attention=SMS_FIRST)
    case = await needs_a_person(stack)
    await stack.run_until("17m")
    [page] = stack.messages_to(ANA.phone or "")
    assert "Passenger 7 needs a person (not_understood)" in page["body"]
    assert "my bag is lost, call me" in page["body"]

    await stack.run_until("40m")  # before the passenger's own plan ends unreached
    [record] = await stack.client.attention()
    assert record.taken_by == "agent-ana"
    assert await pages(stack, case) == {
        "agent-ana": Status.ACKNOWLEDGED,
        "agent-bo": Status.CANCELLED,
    }
    [confirmed] = answers_to(stack, ANA.phone)
    assert confirmed.startswith(f"It's yours: Passenger 7, {PAX.phone}.")
    assert answers_to(stack, BO.phone) == ["Thank you. agent-ana already has this one."]
    assert not [e for e in stack.sim.emails if ANA.email in e["to"] or BO.email in e["to"]]
    stack.assert_webhooks_accepted()


async def test_a_key_on_the_call_takes_it(make_stack: MakeStack) -> None:
    staff = [Persona(phone=ANA.phone, on_call=CallBehaviour(answer="human", press="1"))]
    by_phone = Paging(
        plan=Plan(name="page", steps=[Step(channel="voice", template="page", wait="5m")]),
        staff=[ANA],
        respond_within="15m",
    )
    stack = await make_stack([CONFUSED, *staff], attention=by_phone)
    case = await needs_a_person(stack)
    await stack.run_until("30m")
    [call] = stack.calls_to(ANA.phone or "")
    assert call["digits"] == ["1"]
    [record] = await stack.client.attention()
    assert record.taken_by == "agent-ana"
    assert await pages(stack, case) == {"agent-ana": Status.ACKNOWLEDGED}
    stack.assert_webhooks_accepted()


async def test_the_emails_link_takes_it_and_the_later_click_is_told(
    make_stack: MakeStack,
) -> None:
    staff = [
        Persona(email=ANA.email, on_email=EmailBehaviour(clicks_after="2m")),
        Persona(email=BO.email, on_email=EmailBehaviour(clicks_after="4m")),
    ]
    by_email = paging(Step(channel="email", template="page", wait="10m"))
    stack = await make_stack([CONFUSED, *staff], attention=by_email)
    case = await needs_a_person(stack)
    await stack.run_until("40m")
    [record] = await stack.client.attention()
    assert record.taken_by == "agent-ana"
    assert await pages(stack, case) == {
        "agent-ana": Status.ACKNOWLEDGED,
        "agent-bo": Status.CANCELLED,
    }
    [ana_visit, bo_visit] = stack.callbacks("ack-page")
    assert "agent-ana already has this one" in bo_visit["response"]
    assert "agent-ana" not in ana_visit["response"]
    stack.assert_webhooks_accepted()


async def test_the_demos_refund_complaint_pages_the_duty_agent_who_takes_it_by_sms(
    tmp_path: Path,
) -> None:
    story = await run_story(f"sqlite:///{tmp_path / 'demo.db'}")
    [complaint] = [a for a in story.attention if a.reason.value == "handoff"]
    assert (complaint.recipient_id, complaint.taken_by) == ("pax-01", DUTY_AGENT.id)
    [page] = story.pages
    assert page.recipient.id == DUTY_AGENT.id
    assert (page.status, page.acknowledged_via) == (Status.ACKNOWLEDGED, "sms")
    assert [a.channel for a in page.attempts] == ["sms"]  # taken before the email was due
    others = [a for a in story.attention if a.id != complaint.id]
    assert others
    assert all(a.taken_by is None for a in others)  # only handoffs page (Paging(reasons=))
    assert summary(story)["acknowledged"] == 4
