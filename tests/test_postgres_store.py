"""What only the PostgreSQL store has (migrations under a lock, schemas, URLs), and the client
running on it end to end. The behaviour every store shares is in ``test_stores.py``."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import test_cape_air
import test_client
import test_conversations
from outreach import AsyncClient, Plan, Recipient, Status, Step
from outreach._models import EventKind
from outreach.channels import Message, Receipt
from outreach.exceptions import ConfigurationError, StoreError
from outreach.stores import open_store
from outreach.testing import FakeClock, InMemoryChannel

pytestmark = pytest.mark.integration

PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
CONTEXT = {"flight": "9K 1042"}


def test_postgres_urls_open_a_postgres_store() -> None:
    from outreach.stores.postgres import PostgresStore

    for url in ("postgresql://postgres@127.0.0.1/test", "postgres://u@db.internal:5433/x"):
        assert isinstance(open_store(url), PostgresStore)


def test_without_psycopg_the_url_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "outreach.stores.postgres", raising=False)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'outreach\[postgres\]'"):
        open_store("postgresql://postgres@127.0.0.1/test")


def test_a_schema_name_that_is_not_an_identifier_is_refused() -> None:
    from outreach.stores.postgres import PostgresStore

    with pytest.raises(ConfigurationError, match="schema name"):
        PostgresStore("postgresql://x/y", schema="a; DROP TABLE b")


async def test_an_unreachable_server_is_a_store_error() -> None:
    from outreach.stores.postgres import PostgresStore

    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=0.5)
    with pytest.raises(StoreError, match="cannot connect"):
        await store.open()


async def test_concurrent_starters_migrate_once(postgres_url: str, postgres_schema: str) -> None:
    import psycopg

    from outreach.stores.postgres import PostgresStore, migrations

    stores = [PostgresStore(postgres_url, schema=postgres_schema) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    with psycopg.connect(postgres_url) as db:
        versions = db.execute(
            f"SELECT version FROM {postgres_schema}.schema_version ORDER BY version"
        ).fetchall()
    assert [v for (v,) in versions] == [number for number, _ in migrations()]


async def test_a_search_path_in_the_url_is_honoured(
    postgres_url: str, postgres_schema: str
) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {postgres_schema}")
    separator = "&" if "?" in postgres_url else "?"
    store = open_store(f"{postgres_url}{separator}options=-csearch_path%3D{postgres_schema}")
    await store.open()
    assert await store.remember("evt", FakeClock("2026-11-23T14:00:00+00:00").now())
    await store.close()
    with psycopg.connect(postgres_url) as db:
        [(count,)] = db.execute(
            f"SELECT COUNT(*) FROM {postgres_schema}.webhook_receipts"
        ).fetchall()
    assert count == 1


@pytest.fixture
async def client(
    postgres_url: str,
    postgres_schema: str,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    templates_dir: Path,
) -> AsyncIterator[AsyncClient]:
    """The client of the tests below: the conftest's, but on PostgreSQL."""
    from outreach.stores.postgres import PostgresStore

    store = PostgresStore(postgres_url, schema=postgres_schema)
    async with AsyncClient(
        store=store, channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        yield ox


# Client-level tests written for memory, run again here with ``client`` on PostgreSQL.
test_the_cape_air_story = test_cape_air.test_sms_then_email_then_voice_then_refund_follow_up
test_a_key_sends_once = test_client.test_same_key_returns_the_same_notification_and_sends_once
test_a_key_conflicts = test_client.test_same_key_with_another_recipient_or_plan_conflicts
test_cancel_stops_everything = test_client.test_cancel_stops_everything
test_one_timeline = test_conversations.test_one_customer_one_timeline_across_notifications
test_events_filtered = test_conversations.test_events_filter_by_notification_and_kind_in_the_store


async def test_start_run_acknowledge_and_the_event_log(
    client: AsyncClient, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    n = await client.start(PAX, plan, context=CONTEXT, key="k1", campaign="c")
    await client.run_due()
    assert len(channels["sms"].outbox) == 1
    acked = await client.acknowledge(n.id, via="api", choice="1")
    assert acked.status is Status.ACKNOWLEDGED
    stored = await client.get(key="k1")
    assert (stored.status, stored.choice) == (Status.ACKNOWLEDGED, "1")
    events = [e async for e in client.events()]
    kinds = [e.kind for e in events]
    assert kinds[:2] == [EventKind.CREATED, EventKind.ACTIVATED]
    assert EventKind.ACKNOWLEDGED in kinds
    assert [e async for e in client.events(since=events[1].seq)] == events[2:]


async def test_every_postgres_query_plans_against_the_migrated_schema(
    postgres_url: str, postgres_schema: str
) -> None:
    import re

    import psycopg

    from outreach.stores import _queries
    from outreach.stores.postgres import PostgresStore

    store = PostgresStore(postgres_url, schema=postgres_schema)
    await store.open()
    await store.close()
    options = f"-c search_path={postgres_schema}"
    with psycopg.connect(postgres_url, options=options) as db:
        for name, sql in _queries.load("postgres").items():
            if not sql.startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
                continue  # DDL (schema, schema_version): run by every open()
            params = dict.fromkeys(re.findall(r"%\((\w+)\)[sb]", sql))
            try:
                db.execute(f"EXPLAIN {sql}", params)
            except psycopg.Error as error:
                pytest.fail(f"query {name!r}: {error}")
            finally:
                db.rollback()


class _Held(InMemoryChannel):
    """Each send reaches the provider at once and answers only when the test says."""

    def __init__(self) -> None:
        super().__init__(name="sms", max_in_flight=1)
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: Message) -> Receipt:
        self.started.set()
        await self.release.wait()
        return await super().send(message)


async def test_a_worker_whose_schema_is_dropped_under_it_stops_at_once(
    postgres_url: str, postgres_schema: str, clock: FakeClock, templates_dir: Path
) -> None:
    """The schema goes while a send is in flight and two more wait for the slot: cancelled,
    the worker drains the send, cannot give its leases back (logged) and stops, well within
    the drain timeout, instead of carrying on polling a store that is gone."""
    import psycopg

    from outreach.stores.postgres import PostgresStore

    sms = _Held()
    store = PostgresStore(postgres_url, schema=postgres_schema)
    one_text = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
    async with AsyncClient(
        store=store, channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        for i in range(3):
            await ox.start(
                Recipient(id=f"p{i}", phone=f"+1617555{i:04d}"), one_text, context=CONTEXT
            )
        running = asyncio.create_task(ox.run())
        await asyncio.wait_for(sms.started.wait(), timeout=30)
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as db:
            await db.execute(f"DROP SCHEMA {postgres_schema} CASCADE")
        started = time.monotonic()
        running.cancel()
        sms.release.set()
        await asyncio.wait({running}, timeout=30)
        assert running.cancelled()
        assert time.monotonic() - started < 5


async def test_a_transition_writes_the_records_state_and_never_its_body(
    client: AsyncClient, plan: Plan, channels: dict[str, InMemoryChannel], postgres_url: str
) -> None:
    """What a notification was started with (recipient, context, metadata) is written once,
    in its body; each transition writes the changing part (``state``), laid over it on read."""
    import psycopg

    n = await client.start(PAX, plan, context=CONTEXT, key="k1", metadata={"pnr": "QX7T2L"})
    schema = client.store._schema  # type: ignore[attr-defined]

    def stored() -> tuple[str, str | None]:
        with psycopg.connect(postgres_url) as db:
            row = db.execute(
                f"SELECT body, state FROM {schema}.notifications WHERE id = %s", (n.id,)
            ).fetchone()
        assert row is not None
        return row[0], row[1]

    started_body, state = stored()
    assert state is None
    await client.run_due()
    assert len(channels["sms"].outbox) == 1
    body, state = stored()
    assert body == started_body  # not rewritten
    assert state is not None
    for given in ('"recipient"', '"context"', '"pnr"'):
        assert given not in state
    read = await client.get(n.id)
    assert read.status is Status.ACTIVE
    assert [a.channel for a in read.attempts] == ["sms"]
    assert (read.recipient, read.context, read.metadata) == (n.recipient, n.context, n.metadata)
