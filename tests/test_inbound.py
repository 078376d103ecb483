"""What the webhooks need from the client: provider reports, reply matching, callback dedupe."""

from __future__ import annotations

from outreach import AsyncClient, Plan, Recipient
from outreach._models import AttemptStatus, EventKind
from outreach.testing import FakeClock, InMemoryChannel

PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
CONTEXT = {"flight": "9K 1042"}


async def test_provider_reports_find_their_attempt_and_escalate_early(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    n = await client.start(PAX, plan, context=CONTEXT)
    await client.run_due()
    [sms] = (await client.get(n.id)).attempts
    assert sms.provider_id is not None
    delivered = await client.inbound.update_attempt("delivered", provider_id=sms.provider_id)
    assert delivered is not None
    assert delivered.attempts[0].status is AttemptStatus.DELIVERED
    late = await client.inbound.update_attempt("sent", attempt_id=sms.id)  # out of order: ignored
    assert late is not None
    assert late.attempts[0].status is AttemptStatus.DELIVERED
    await client.inbound.update_attempt("undelivered", attempt_id=sms.id, error="30003")
    await client.run_due()  # early escalation: the email goes now, not in 15 minutes
    assert len(channels["email"].outbox) == 1
    assert await client.inbound.update_attempt("delivered", provider_id="SM-unknown") is None


async def test_replies_find_the_latest_notification_sent_to_that_number(
    client: AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    first = await client.start(PAX, plan, context=CONTEXT, key="a")
    await client.run_due()
    clock.advance("1m")
    second = await client.start(PAX, plan, context=CONTEXT, key="b")
    await client.run_due()
    target = await client.inbound.reply_target("sms", "+16175550123")
    assert target is not None
    assert target.id == second.id
    assert await client.inbound.reply_target("sms", "+16175550199") is None
    clock.advance("8d")  # past the grace period
    assert await client.inbound.reply_target("sms", "+16175550123") is None
    before = await client.get(first.id)
    noted = await client.inbound.record_reply(first.id, via="sms", text="what?")
    assert noted.status is before.status
    assert [e.data.get("text") async for e in client.events() if e.kind is EventKind.REPLY] == [
        "what?"
    ]


async def test_webhook_event_ids_are_seen_once(client: AsyncClient) -> None:
    assert await client.inbound.first_sighting("sg:abc") is True
    assert await client.inbound.first_sighting("sg:abc") is False
