"""What only the PostgreSQL store has (migrations under a lock, schemas, URLs), and the client
running on it end to end. The behaviour every store shares is in ``test_stores.py``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from outreach import AsyncClient, Plan, Recipient, Status
from outreach._models import EventKind
from outreach.exceptions import ConfigurationError, IdempotencyConflict, StoreError
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
async def pg_client(
    postgres_url: str,
    postgres_schema: str,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    templates_dir: Path,
) -> AsyncIterator[AsyncClient]:
    from outreach.stores.postgres import PostgresStore

    store = PostgresStore(postgres_url, schema=postgres_schema)
    async with AsyncClient(
        store=store, channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        yield ox


async def test_start_run_acknowledge_and_the_event_log(
    pg_client: AsyncClient, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    n = await pg_client.start(PAX, plan, context=CONTEXT, key="k1", campaign="c")
    await pg_client.run_due()
    assert len(channels["sms"].outbox) == 1
    acked = await pg_client.acknowledge(n.id, via="api", choice="1")
    assert acked.status is Status.ACKNOWLEDGED
    stored = await pg_client.get(key="k1")
    assert (stored.status, stored.choice) == (Status.ACKNOWLEDGED, "1")
    events = [e async for e in pg_client.events()]
    kinds = [e.kind for e in events]
    assert kinds[:2] == [EventKind.CREATED, EventKind.ACTIVATED]
    assert EventKind.ACKNOWLEDGED in kinds
    assert [e async for e in pg_client.events(since=events[1].seq)] == events[2:]


async def test_a_key_is_idempotent_and_a_different_request_conflicts(
    pg_client: AsyncClient, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    first = await pg_client.start(PAX, plan, context=CONTEXT, key="k1")
    again = await pg_client.start(PAX, plan, context=CONTEXT, key="k1")
    assert again.id == first.id
    await pg_client.run_due()
    await pg_client.start(PAX, plan, context=CONTEXT, key="k1")
    await pg_client.run_due()
    assert len(channels["sms"].outbox) == 1
    with pytest.raises(IdempotencyConflict, match="k1"):
        await pg_client.start(
            PAX.model_copy(update={"id": "other"}), plan, context=CONTEXT, key="k1"
        )
    assert [n.key for n in await pg_client.list()] == ["k1"]


async def test_escalation_and_a_follow_up(
    pg_client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    n = await pg_client.start(PAX, plan, context=CONTEXT, key="pax-17")
    await pg_client.run_due()
    clock.advance("15m")
    await pg_client.run_due()
    assert (len(channels["sms"].outbox), len(channels["email"].outbox)) == (1, 1)
    await pg_client.acknowledge(n.id, via="api", choice="2")  # a refund: check on it in 3 days
    follow_up = await pg_client.get(key="pax-17/refund_check")
    assert follow_up.parent_id == n.id
    clock.advance("3d")
    await pg_client.run_due()
    assert len(channels["voice"].outbox) == 1
    assert channels["voice"].outbox[0].notification_id == follow_up.id
