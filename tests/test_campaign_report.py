"""``read_campaign_report`` (what ``outreach report`` runs) gives the numbers the report of
the whole log gives, while reading from the log only acknowledgements and opt-outs, a page at
a time, whatever else the log holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from outreach import AsyncClient, Plan, Recipient
from outreach._models import EventKind
from outreach.campaigns import REPORTED_EVENTS, campaign_report, read_campaign_report
from outreach.stores import EventFilter
from outreach.testing import FakeClock, InMemoryChannel


async def _campaign(ox: AsyncClient, clock: FakeClock, plan: Plan) -> None:
    """c1: pax-0 answers the text (2), pax-1 the email (1), pax-2 opts out of texts and is
    never reached, pax-3 was suppressed before it started; c2 and c3 fill the log."""
    people = [
        Recipient(id=f"pax-{i}", phone=f"+1617555010{i}", email=f"p{i}@example.com")
        for i in range(4)
    ]
    await ox.suppress("sms", people[3].phone or "")
    for campaign in ("c2", "c1", "c3"):
        for person in people:
            await ox.start(person, plan, key=f"{campaign}/{person.id}", campaign=campaign)
    await ox.run_due()
    clock.advance("10m")
    await ox.acknowledge(key="c1/pax-0", via="sms", choice="2")
    await ox.acknowledge(key="c2/pax-1", via="sms", choice="1")
    pax_2 = await ox.get(key="c1/pax-2")
    await ox.opt_out("sms", pax_2.recipient.phone or "", notification_id=pax_2.id)
    clock.advance("20m")
    await ox.run_due()  # the emails go out
    await ox.acknowledge(key="c1/pax-1", via="email", choice="1")
    for _ in range(200):
        clock.advance("30m")
        await ox.run_due()


@pytest.fixture
async def stored(
    tmp_path: Path, clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> AsyncClient:
    plan = Plan(
        name="p",
        steps=[
            {"channel": "sms", "template": "flight_cancelled", "wait": "15m"},
            {"channel": "email", "template": "flight_cancelled", "wait": "30m"},
        ],
        options=[{"key": "1", "label": "Rebook me"}, {"key": "2", "label": "Refund"}],
        repeat=1,
    )
    store = f"sqlite:///{tmp_path / 'o.db'}"
    context = {"flight": "9K 1042"}
    async with AsyncClient(
        store=store, channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        real_start = ox.start

        async def start(*args: Any, **kwargs: Any) -> Any:
            return await real_start(*args, context=context, **kwargs)

        ox.start = start  # type: ignore[method-assign]
        await _campaign(ox, clock, plan)
    return AsyncClient(store=store, templates=templates_dir, clock=clock)


async def test_the_report_read_page_by_page_is_the_report_of_the_whole_log(
    stored: AsyncClient,
) -> None:
    async with stored as ox:
        whole = campaign_report("c1", await ox.list(campaign="c1"), [e async for e in ox.events()])
        read = await read_campaign_report(ox, "c1")
        assert read == whole
        assert (await read_campaign_report(ox, "c1", lines=False)).recipients == []
    assert read.notifications == 4
    assert read.acknowledged == 2
    assert read.by_channel == {"sms": 1, "email": 1}
    assert read.by_step == {"1 sms": 1, "2 email": 1}
    assert read.choices == {"Refund": 1, "Rebook me": 1}
    assert read.opted_out == 2  # pax-2 by its reply, pax-3 suppressed beforehand
    assert sorted(r["recipient"] for r in read.never_reached) == ["pax-2", "pax-3"]
    opted = {line["recipient"]: line["opted_out"] for line in read.recipients}
    assert opted == {"pax-0": False, "pax-1": False, "pax-2": True, "pax-3": True}


async def test_only_acknowledgements_and_opt_outs_are_read_from_the_log(
    stored: AsyncClient,
) -> None:
    asked: list[tuple[int, int, EventFilter | None]] = []
    async with stored as ox:
        everything = [e async for e in ox.events()]
        real = ox.store.events

        async def events(since: int = 0, limit: int = 1000, where: Any = None) -> Any:
            asked.append((since, limit, where))
            return await real(since, limit, where)

        ox.store.events = events  # type: ignore[method-assign]
        report = await read_campaign_report(ox, "c1")
    assert report.acknowledged == 2
    assert asked
    assert {where.kinds if where else None for _, _, where in asked} == {frozenset(REPORTED_EVENTS)}
    assert {limit for _, limit, _ in asked} == {1000}
    wanted = sum(e.kind in REPORTED_EVENTS for e in everything)
    assert 0 < wanted < len(everything) / 5  # most of the log is never read
    assert {EventKind.ACKNOWLEDGED, EventKind.OPTED_OUT} == set(REPORTED_EVENTS)
