"""One open attention record per notification: a later cause (another unclear reply, an
unreached ending, a handoff) is added to the open record, logged, and pages nobody again;
a record resolved meanwhile makes the cause open a record of its own. On memory, a SQLite
file and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from outreach import (
    AsyncClient,
    Attention,
    AttentionReason,
    EventKind,
    Hooks,
    Option,
    Paging,
    Plan,
    Recipient,
    Status,
    Step,
)
from outreach._attentions import DETAIL_LIMIT, MORE
from outreach._paging import page_campaign
from outreach.demo import templates_dir as demo_templates
from outreach.stores import AttentionUpdate, Change
from outreach.testing import FakeClock, InMemoryChannel

pytestmark = pytest.mark.integration

ANN = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
ANA = Recipient(id="agent-ana", phone="+16175550150", email="ana@example.com")
BO = Recipient(id="agent-bo", phone="+16175550151", email="bo@example.com")
CONTEXT = {"flight": "9K 1042"}
TWO_TEXTS = Plan(
    name="two-texts",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait="15m"),
        Step(channel="sms", template="flight_cancelled", wait="15m"),
    ],
    options=[
        Option(key="1", label="Rebook me", keywords=["rebook"]),
        Option(key="2", label="Talk to an agent", handoff=True),
    ],
)
PAGE = Plan(name="page", steps=[Step(channel="sms", template="page", wait="5m")], urgent=True)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outreach.db'}"
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    return f"{url}?options=-csearch_path%3D{schema}"


@pytest.fixture
def templates_dir(templates_dir: Path) -> Path:
    """The example templates, with the demo's page (what staff are sent)."""
    shutil.copytree(Path(demo_templates()) / "page", templates_dir / "page")
    return templates_dir


@pytest.fixture
def opened() -> list[Attention]:
    """What ``on_attention`` was called with."""
    return []


@pytest.fixture
def make_client(
    store_url: str,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    templates_dir: Path,
    opened: list[Attention],
) -> Callable[..., AsyncClient]:
    def make(**options: Any) -> AsyncClient:
        return AsyncClient(
            store=store_url,
            channels=channels,
            templates=templates_dir,
            clock=clock,
            hooks=Hooks(on_attention=opened.append),
            **options,
        )

    return make


@pytest.fixture
async def ox(make_client: Callable[..., AsyncClient]) -> AsyncIterator[AsyncClient]:
    async with make_client() as client:
        yield client


async def unclear(ox: AsyncClient, notification_id: str, text: str) -> None:
    await ox.inbound.record_reply(notification_id, via="sms", text=text, unmatched=True)


async def kinds(ox: AsyncClient, *wanted: EventKind) -> list[EventKind]:
    return [e.kind for e in await ox.timeline(ANN.id) if e.kind in wanted]


ATTENTION_KINDS = (EventKind.ATTENTION_OPENED, EventKind.ATTENTION_UPDATED)


async def test_repeated_unclear_replies_keep_one_record_with_every_text(
    ox: AsyncClient, opened: list[Attention]
) -> None:
    n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
    await ox.run_due()
    for text in ("where is my bag", "hello??", "call me"):
        await unclear(ox, n.id, text)
    [record] = await ox.attention(open=None)
    assert record.reason is AttentionReason.NOT_UNDERSTOOD
    assert record.detail == (
        "replied, not understood: 'where is my bag'; then replied, not understood: 'hello??';"
        " then replied, not understood: 'call me'"
    )
    assert opened == [record.model_copy(update={"detail": opened[0].detail})]  # hook once
    assert await kinds(ox, *ATTENTION_KINDS) == [
        EventKind.ATTENTION_OPENED,
        EventKind.ATTENTION_UPDATED,
        EventKind.ATTENTION_UPDATED,
    ]
    [*_, last] = [e for e in await ox.timeline(ANN.id) if e.kind is EventKind.ATTENTION_UPDATED]
    assert last.data["attention_id"] == record.id
    assert last.data["detail"] == "replied, not understood: 'call me'"


async def test_an_unclear_reply_then_an_unreached_ending_is_one_record(
    ox: AsyncClient, clock: FakeClock
) -> None:
    n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
    await ox.run_due()
    await unclear(ox, n.id, "what?")
    for _ in range(3):
        clock.advance("15m")
        await ox.run_due()
    assert (await ox.get(n.id)).status is Status.EXHAUSTED
    [record] = await ox.attention(open=None)
    assert record.reason is AttentionReason.NOT_UNDERSTOOD  # the reason it was opened for
    assert record.detail == "replied, not understood: 'what?'; then exhausted: no answer to sms"
    updated = [e for e in await ox.timeline(ANN.id) if e.kind is EventKind.ATTENTION_UPDATED]
    assert [e.data["reason"] for e in updated] == ["unreached"]


async def test_with_paging_one_customer_gets_one_round_of_pages(
    make_client: Callable[..., AsyncClient],
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
) -> None:
    paging = Paging(plan=PAGE, staff=[ANA, BO], respond_within="15m")
    async with make_client(attention=paging) as ox:
        n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
        await ox.run_due()
        await unclear(ox, n.id, "what?")
        await unclear(ox, n.id, "???")
        for _ in range(4):
            clock.advance("15m")
            await ox.run_due()
        [record] = await ox.attention(open=None)
        pages = await ox.list(campaign=page_campaign(record.id))
        assert sorted(p.recipient.id for p in pages) == ["agent-ana", "agent-bo"]
        assert len(await ox.list(campaign=None)) == 3  # the customer's notice and two pages
        staff = [m.to for m in channels["sms"].outbox if m.to != ANN.phone]
        assert sorted(staff) == [ANA.phone, BO.phone]  # paged once each, not three times


async def test_a_cause_after_the_record_was_resolved_opens_a_new_one(
    ox: AsyncClient, opened: list[Attention]
) -> None:
    n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
    await ox.run_due()
    await unclear(ox, n.id, "what?")
    [first] = await ox.attention()
    await ox.resolve(first.id, by="agent-ana", note="called her")
    await unclear(ox, n.id, "still confused")
    [second] = await ox.attention()
    assert second.id != first.id
    assert second.detail == "replied, not understood: 'still confused'"
    assert [a.id for a in opened] == [first.id, second.id]


async def test_a_write_adding_to_a_record_resolved_meanwhile_loses_its_check(
    ox: AsyncClient,
) -> None:
    """The store half of the race: the cause was decided against an open record that a
    person resolved before the change committed. Nothing of the change is written, as for a
    stale version (the caller decides again, on a fresh copy)."""
    n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
    await ox.run_due()
    await unclear(ox, n.id, "what?")
    [record] = await ox.attention()
    current = await ox.get(n.id)
    stale = Change(current, attention_updates=[AttentionUpdate(record.id, "stale detail")])
    await ox.resolve(record.id, by="agent-ana")
    assert await ox.store.save([stale, Change(current)]) == [
        None,
        current.model_copy(update={"version": current.version + 1}),
    ]
    [closed] = await ox.attention(open=False)
    assert closed.detail == "replied, not understood: 'what?'"


async def test_a_resolve_racing_the_cause_still_leaves_the_cause_in_an_open_record(
    ox: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the record is resolved after the runner looked it up and before its
    change commits; the cause is decided again and opens a record of its own."""
    from outreach import _runner

    n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
    await ox.run_due()
    await unclear(ox, n.id, "what?")
    [first] = await ox.attention()
    looked_up = _runner.open_attention
    raced = []

    async def resolved_right_after(store: Any, notification: Any) -> Attention | None:
        found = await looked_up(store, notification)
        if found is not None and not raced:
            raced.append(found.id)
            await ox.resolve(found.id, by="agent-ana")
        return found

    monkeypatch.setattr(_runner, "open_attention", resolved_right_after)
    await unclear(ox, n.id, "hello?")
    assert raced == [first.id]
    [second] = await ox.attention()
    assert second.id != first.id
    assert second.detail == "replied, not understood: 'hello?'"
    [closed] = await ox.attention(open=False)
    assert closed.detail == "replied, not understood: 'what?'"


async def test_a_handoff_after_an_unclear_reply_pages_when_only_handoffs_page(
    make_client: Callable[..., AsyncClient],
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
) -> None:
    paging = Paging(plan=PAGE, staff=[ANA], respond_within="15m", reasons=["handoff"])
    async with make_client(attention=paging) as ox:
        n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
        await ox.run_due()
        await unclear(ox, n.id, "what?")
        [record] = await ox.attention()
        assert await ox.list(campaign=page_campaign(record.id)) == []  # not a reason to page
        clock.advance("5m")
        await ox.acknowledge(n.id, via="sms", choice="2")
        [record] = await ox.attention()
        assert record.reason is AttentionReason.HANDOFF
        assert record.detail.endswith("; then chose 2: Talk to an agent")
        [page] = await ox.list(campaign=page_campaign(record.id))
        assert page.due_at == clock.now() + paging.respond_within  # from the handoff
        clock.advance("15m")
        await ox.run_due()
        assert [m.to for m in channels["sms"].outbox][-1] == ANA.phone


async def test_the_detail_stops_growing_and_the_timeline_keeps_every_reply(
    ox: AsyncClient,
) -> None:
    n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
    await ox.run_due()
    texts = [f"message number {i} " + "x" * 40 for i in range(40)]
    for text in texts:
        await unclear(ox, n.id, text)
    [record] = await ox.attention()
    assert len(record.detail) <= DETAIL_LIMIT + len(MORE)
    assert record.detail.endswith(MORE)
    replies = [e.data["text"] for e in await ox.timeline(ANN.id) if e.kind is EventKind.REPLY]
    assert replies == texts


async def test_a_late_answer_leaves_open_an_unreached_record_the_customer_added_to(
    ox: AsyncClient, clock: FakeClock
) -> None:
    """Ended unreached, then an unclear reply, then an answer: the answer closes no case
    a person still has to read."""
    n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
    await ox.run_due()
    for _ in range(3):
        clock.advance("15m")
        await ox.run_due()
    [record] = await ox.attention()
    assert record.reason is AttentionReason.UNREACHED
    await unclear(ox, n.id, "my bag is lost")
    await ox.acknowledge(n.id, via="sms", choice="1")
    [still] = await ox.attention()
    assert still.id == record.id
    assert still.detail.endswith("; then replied, not understood: 'my bag is lost'")


async def test_a_late_handoff_after_an_unreached_ending_is_not_closed_by_itself(
    ox: AsyncClient, clock: FakeClock
) -> None:
    n = await ox.start(ANN, TWO_TEXTS, context=CONTEXT)
    await ox.run_due()
    for _ in range(3):
        clock.advance("15m")
        await ox.run_due()
    await ox.acknowledge(n.id, via="sms", choice="2")
    [record] = await ox.attention()
    assert record.detail.endswith("; then chose 2: Talk to an agent")


async def test_concurrent_unclear_replies_open_one_record(
    store_url: str, make_client: Callable[..., AsyncClient]
) -> None:
    """Replies landing at once, in one process and (on a shared store) in two: the writes
    are version-checked against the notification, so the losers are decided again and add
    to the record the winner opened (four: fewer than the writes a notification retries)."""
    import asyncio

    async with make_client() as first, make_client() as second:
        n = await first.start(ANN, TWO_TEXTS, context=CONTEXT)
        await first.run_due()
        shared = store_url != "memory://"  # memory:// is private to each client
        others = [second if shared and i % 2 else first for i in range(4)]
        await asyncio.gather(*(unclear(ox, n.id, f"reply {i}") for i, ox in enumerate(others)))
        [record] = await first.attention(open=None)
        for i in range(4):
            assert f"'reply {i}'" in record.detail
        assert (await kinds(first, *ATTENTION_KINDS)).count(EventKind.ATTENTION_OPENED) == 1
