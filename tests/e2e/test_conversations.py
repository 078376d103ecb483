"""Replies never land on the wrong notice: one passenger, two active notifications (outbound and
return flight), a reply "2" from their phone, through the simulator and the real webhooks.

With two sender numbers each notification is texted from its own, so the reply's ``To`` names
the conversation. With one, the reply goes to the most recent notice, the confirmation says
which, and the other notice keeps the reply in its trail and stays active.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from outreach import EventKind, Status
from outreach._sandbox import SANDBOX_NUMBER, SANDBOX_SECRET, SANDBOX_SENDER
from outreach.channels import Channel, SendGridEmail, TwilioSMS, TwilioVoice
from outreach.testing import ProviderSimulator

from ._stack import MakeStack, Stack, passenger

pytestmark = pytest.mark.integration

SECOND_NUMBER = "+15085550198"
PAX = passenger(7)
PHONE = PAX.phone or ""


def two_numbers(sims: Sequence[ProviderSimulator]) -> dict[str, Channel]:
    """The sandbox's adapters, the SMS one with two sender numbers."""
    settings = sims[0].settings(
        secret_key=SANDBOX_SECRET, twilio_from=SANDBOX_NUMBER, sendgrid_from=SANDBOX_SENDER
    )
    return {
        "sms": TwilioSMS(settings=settings, senders=[SANDBOX_NUMBER, SECOND_NUMBER]),
        "email": SendGridEmail(settings=settings),
        "voice": TwilioVoice(settings=settings),
    }


async def two_flights(stack: Stack) -> tuple[str, str]:
    """The outbound flight's notice, then (a minute later) the return flight's."""
    outbound = await stack.start(PAX, key="outbound", context={"flight": "9K 1042"})
    await stack.run_until("1m")
    back = await stack.start(PAX, key="return", context={"flight": "9K 1043"})
    await stack.run_until("2m")
    return outbound.id, back.id


async def test_with_two_sender_numbers_each_reply_goes_to_its_own_notice(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(channels=two_numbers)
    outbound, back = await two_flights(stack)
    texts = stack.messages_to(PHONE)
    assert [t["from"] for t in texts] == [SANDBOX_NUMBER, SECOND_NUMBER]
    assert "9K 1042" in str(texts[0]["body"])
    assert "9K 1043" in str(texts[1]["body"])

    stack.sim.inbound_sms(PHONE, SANDBOX_NUMBER, "2")  # answers the older, outbound notice
    await stack.run_until("3m")
    first = await stack.client.get(outbound)
    second = await stack.client.get(back)
    assert (first.status, first.choice) == (Status.ACKNOWLEDGED, "2")
    assert second.status is Status.ACTIVE

    stack.sim.inbound_sms(PHONE, SECOND_NUMBER, "1")
    await stack.run_until("4m")
    second = await stack.client.get(back)
    assert (second.status, second.choice) == (Status.ACKNOWLEDGED, "1")
    assert (await stack.client.get(outbound)).choice == "2"  # untouched
    answers = [r for r in stack.sim.auto_replies if r["source"] == "webhook"]
    assert [(a["from"], a["body"]) for a in answers] == [
        (SANDBOX_NUMBER, "Thank you. We have recorded your choice: Refund."),
        (SECOND_NUMBER, "Thank you. We have recorded your choice: Rebook me."),
    ]
    stack.assert_webhooks_accepted()


async def test_a_notification_keeps_its_number_for_every_text(make_stack: MakeStack) -> None:
    """A second pass (or any later text) of a notification comes from the number its first
    text came from, so the customer's reply to the earlier text still matches."""
    stack = await make_stack(channels=two_numbers)
    outbound, back = await two_flights(stack)
    await stack.client.acknowledge(back, via="api")
    third = await stack.start(PAX, key="hotel", context={"flight": "9K 1044"})
    await stack.run_until("3m")
    texts = stack.messages_to(PHONE)
    assert [t["from"] for t in texts] == [SANDBOX_NUMBER, SECOND_NUMBER, SECOND_NUMBER]
    assert (await stack.client.get(third.id)).status is Status.ACTIVE
    assert outbound != third.id


async def test_with_one_number_the_confirmation_names_the_notice_and_the_other_stays_active(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    outbound, back = await two_flights(stack)
    assert {t["from"] for t in stack.messages_to(PHONE)} == {SANDBOX_NUMBER}

    stack.sim.inbound_sms(PHONE, SANDBOX_NUMBER, "2")
    await stack.run_until("3m")
    latest = await stack.client.get(back)
    other = await stack.client.get(outbound)
    assert (latest.status, latest.choice) == (Status.ACKNOWLEDGED, "2")
    assert other.status is Status.ACTIVE
    [answer] = [r for r in stack.sim.auto_replies if r["source"] == "webhook"]
    assert answer["body"] == (
        "Thank you. We have recorded your choice: Refund. "
        '(This answer is for: "Cape Air: flight 9K 1043 is cancelled. Reply...")'
    )
    replies = [e for e in await stack.events(outbound) if e.kind is EventKind.REPLY]
    assert [r.data["text"] for r in replies] == ["2"]  # kept on the other notice
    stack.assert_webhooks_accepted()
