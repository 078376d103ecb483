"""The Cape Air story end to end on a fake clock and in-memory channels."""

from __future__ import annotations

from outreach import AsyncClient, Plan, Recipient, Status
from outreach.testing import FakeClock, InMemoryChannel

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
