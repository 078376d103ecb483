"""Cancelling a whole campaign: batch by batch, every unfinished notification, no other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from outreach import AsyncClient, EventKind, Plan, Recipient, StartRequest, Status
from outreach.stores import Store
from outreach.testing import FakeClock, InMemoryChannel


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def ox(
    request: pytest.FixtureRequest,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    templates_dir: Path,
) -> AsyncIterator[AsyncClient]:
    store: Store | str = "memory://"
    if request.param == "postgres":
        from outreach.stores.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        store = PostgresStore(url, schema=request.getfixturevalue("postgres_schema"))
    async with AsyncClient(
        store=store, channels=channels, templates=templates_dir, clock=clock
    ) as client:
        yield client


def _people(prefix: str, n: int) -> list[StartRequest]:
    return [
        StartRequest(Recipient(id=f"{prefix}-{i}", phone=f"+1617555{i:04d}"), key=f"{prefix}/{i}")
        for i in range(n)
    ]


async def test_every_unfinished_notification_of_the_campaign_and_no_other(
    ox: AsyncClient, plan: Plan, channels: dict[str, InMemoryChannel], clock: FakeClock
) -> None:
    ctx = {"flight": "9K 1042"}
    await ox.start_many(plan, _people("a", 23), context=ctx, campaign="a")
    await ox.start_many(plan, _people("b", 4), context=ctx, campaign="b")
    await ox.run_due()  # the first texts go out: active, not pending
    await ox.start_many(plan, _people("late", 3), context=ctx, campaign="a")  # still pending
    await ox.acknowledge(key="a/0", via="sms", choice="1")  # finished: not cancelled again
    sent = len(channels["sms"].outbox)

    cancelled = await ox.cancel_campaign("a", reason="flight reinstated", batch=5)

    assert cancelled == 25
    campaign = await ox.list(campaign="a")
    by_status = {s: sum(n.status is s for n in campaign) for s in Status}
    assert by_status[Status.CANCELLED] == 25
    assert by_status[Status.ACKNOWLEDGED] == 1
    assert all(n.status is Status.ACTIVE for n in await ox.list(campaign="b"))
    reasons = [e.data.get("reason") async for e in ox.events() if e.kind is EventKind.CANCELLED]
    assert reasons == ["flight reinstated"] * 25
    clock.advance("1h")
    await ox.run_due()
    assert len(channels["sms"].outbox) == sent  # nothing more for the cancelled ones
    assert len(channels["voice"].outbox) == 4  # campaign b escalates (no email: a call)
    assert await ox.cancel_campaign("a") == 0  # again: nothing left to cancel
    assert await ox.cancel_campaign("no-such-campaign") == 0
