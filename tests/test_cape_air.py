"""The Cape Air story end to end: on a fake clock with in-memory channels, and on the
sandbox (the real adapters, webhooks and simulated customers over loopback HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from outreach import AsyncClient, AttentionReason, Hooks, Plan, Recipient, Status
from outreach.demo import demo_plan, templates_dir
from outreach.testing import (
    CallBehaviour,
    FakeClock,
    InMemoryChannel,
    Persona,
    Sandbox,
    SmsBehaviour,
)

PAX = Recipient(
    id="pax-17",
    phone="+16175550123",
    email="ann@example.com",
    timezone="America/New_York",
)


async def test_sms_then_email_then_voice_then_refund_follow_up(
    client: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel], plan: Plan
) -> None:
    start = clock.now()
    n = await client.start(
        PAX, plan, context={"flight": "9K 1042"}, key="9K1042-pax-17", campaign="9K1042"
    )
    assert n.status is Status.PENDING

    await client.run_due()
    assert [m.to for m in channels["sms"].outbox] == ["+16175550123"]
    assert "9K 1042" in channels["sms"].outbox[0].body

    clock.advance("14m")
    await client.run_due()
    assert channels["email"].outbox == []
    clock.advance("1m")
    await client.run_due()
    assert len(channels["email"].outbox) == 1
    assert channels["email"].outbox[0].subject

    clock.advance("30m")
    await client.run_due()
    assert len(channels["voice"].outbox) == 1
    call = channels["voice"].outbox[0]
    assert clock.now() - start == plan.steps[0].wait + plan.steps[1].wait

    n = await client.acknowledge(
        key="9K1042-pax-17", via="voice", choice="2", attempt_id=call.attempt_id
    )
    assert n.status is Status.ACKNOWLEDGED
    assert n.choice == "2"

    sent_before = sum(len(c.outbox) for c in channels.values())
    clock.advance("2h")
    await client.run_due()
    assert sum(len(c.outbox) for c in channels.values()) == sent_before

    follow_up = await client.get(key="9K1042-pax-17/refund_check")
    assert follow_up.parent_id == n.id
    clock.advance("3d")
    await client.run_due()
    assert len(channels["voice"].outbox) == 2
    assert channels["voice"].outbox[1].notification_id == follow_up.id
    clock.advance("1d")
    await client.run_due()
    assert len(channels["voice"].outbox) == 2
    assert (await client.get(follow_up.id)).status is Status.EXHAUSTED
    parent = await client.get(n.id)
    assert [a.channel for a in parent.attempts] == ["sms", "email", "voice"]


class _Heard:
    """What the hooks were called with, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def hooks(self) -> Hooks:
        def note(name: str) -> Callable[[Any], None]:
            return lambda record: self.calls.append((name, record.id))

        return Hooks(
            on_acknowledged=note("acknowledged"),
            on_exhausted=note("exhausted"),
            on_expired=note("expired"),
            on_failed=note("failed"),
            on_attention=note("attention"),
            on_attention_resolved=note("resolved"),
        )


async def test_on_the_sandbox_the_refund_check_call_hands_2_to_a_person() -> None:
    """Refund by text; three days later a call with its own two options; "2" (the refund has
    not arrived) acknowledges it and opens attention with that reason; resolving it closes
    it; every hook fires once."""
    ann = Persona(
        phone="+16175550101",
        email="ann@example.com",
        on_sms=SmsBehaviour(reply="2", reply_after="4m"),
        on_call=CallBehaviour(answer="human", press="2"),
    )
    recipient = Recipient(
        id="pax-01", phone=ann.phone, email=ann.email, timezone="America/New_York"
    )
    heard = _Heard()
    async with Sandbox(
        store="memory://", templates=templates_dir(), personas=[ann], hooks=heard.hooks()
    ) as box:
        ox = box.client
        n = await ox.start(recipient, demo_plan(), context={"flight": "9K 1042"}, key="9K/pax-01")
        await box.run_until("1h")
        assert (await ox.get(n.id)).choice == "2"
        assert await ox.attention() == []
        assert box.sim.calls == []

        await box.run_until("3d2h")
        check = await ox.get(key="9K/pax-01/refund_check")
        [call] = box.sim.calls
        assert call["digits"] == ["2"]
        assert "press 1 if your refund arrived, or 2 if it has not" in call["twiml"][0]
        assert check.status is Status.ACKNOWLEDGED
        assert (check.choice, check.acknowledged_via) == ("2", "voice")
        [opened] = await ox.attention()
        assert opened.reason is AttentionReason.HANDOFF
        assert opened.detail == "chose 2: My refund has not arrived"
        assert opened.notification_id == check.id

        closed = await ox.resolve(opened.id, by="agent-7", note="refund re-issued")
        assert await ox.resolve(opened.id, by="agent-7") == closed
        assert await ox.attention() == []
        assert heard.calls == [
            ("acknowledged", n.id),
            ("acknowledged", check.id),
            ("attention", opened.id),
            ("resolved", opened.id),
        ]


async def test_on_the_sandbox_a_reply_that_matches_nothing_gets_sorry_and_a_person() -> None:
    bo = Persona(
        phone="+16175550102",
        email="bo@example.com",
        on_sms=SmsBehaviour(reply="my bag is lost, call me", reply_after="5m"),
    )
    recipient = Recipient(id="pax-02", phone=bo.phone, email=bo.email, timezone="America/New_York")
    heard = _Heard()
    async with Sandbox(
        store="memory://", templates=templates_dir(), personas=[bo], hooks=heard.hooks()
    ) as box:
        ox = box.client
        n = await ox.start(recipient, demo_plan(), context={"flight": "9K 1042"})
        await box.run_until("10m")
        [sorry] = box.sim.auto_replies
        assert sorry["body"].startswith("Sorry, we did not understand.")
        [opened] = await ox.attention()
        assert opened.reason is AttentionReason.NOT_UNDERSTOOD
        assert opened.detail == "replied, not understood: 'my bag is lost, call me'"
        assert (await ox.get(n.id)).status is Status.ACTIVE  # the escalation goes on
        await box.run_until("1d")
        # Never reached after all: added to the same case (one customer, one case), whose
        # detail says so after the reply.
        ended = await ox.get(n.id)
        assert ended.status is Status.EXHAUSTED
        [case] = await ox.attention()
        assert (case.id, case.reason) == (opened.id, AttentionReason.NOT_UNDERSTOOD)
        assert case.detail.startswith(
            "replied, not understood: 'my bag is lost, call me'; then exhausted: "
        )
        assert heard.calls == [("attention", opened.id), ("exhausted", n.id)]
