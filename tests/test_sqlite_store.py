"""The SQLite store on a real file: leases, version checks, migrations, sharing one file."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from outreach import Notification, Plan, Recipient, Status, Step
from outreach._models import Attempt, AttemptStatus, Event, EventKind, Medium
from outreach.exceptions import ConfigurationError, IdempotencyConflict, StoreError
from outreach.stores import Change, open_store
from outreach.stores._codec import as_stored
from outreach.stores.sqlite import SQLiteStore, migrations

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PLAN = Plan(name="p", steps=[Step(channel="sms", template="t")])


def notification(i: int, *, key: str | None = None, due: datetime | None = NOW) -> Notification:
    return Notification(
        id=f"n{i}",
        key=key,
        recipient=Recipient(id=f"r{i}", phone="+16175550123"),
        plan=PLAN,
        created_at=NOW,
        updated_at=NOW,
        due_at=due,
    )


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteStore]]:
    """Two stores on one file, as two processes would have."""
    path = tmp_path / "shared.db"
    first, second = SQLiteStore(path), SQLiteStore(path)
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


async def test_a_lease_keeps_other_runners_away_until_it_lapses(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    a, b = stores
    await a.create([notification(i) for i in range(10)], [])
    mine = await a.claim_due(NOW, owner="a", lease=timedelta(minutes=5), limit=6)
    theirs = await b.claim_due(NOW, owner="b", lease=timedelta(minutes=5), limit=10)
    assert len(mine) == 6
    assert len(theirs) == 4
    assert {n.id for n in mine}.isdisjoint(n.id for n in theirs)
    assert (
        await b.claim_due(
            NOW + timedelta(minutes=4), owner="b", lease=timedelta(minutes=5), limit=10
        )
        == []
    )
    lapsed = await b.claim_due(
        NOW + timedelta(minutes=5), owner="b", lease=timedelta(minutes=5), limit=10
    )
    assert len(lapsed) == 10


async def test_saving_releases_only_your_own_lease(stores: tuple[SQLiteStore, SQLiteStore]) -> None:
    a, b = stores
    await a.create([notification(1)], [])
    [claimed] = await a.claim_due(NOW, owner="a", lease=timedelta(minutes=5), limit=1)
    [saved] = await b.save([Change(claimed, owner="b")])  # an ack from elsewhere
    assert saved is not None
    assert await b.claim_due(NOW, owner="b", lease=timedelta(minutes=5), limit=1) == []
    [released] = await a.save([Change(saved, owner="a")])
    assert released is not None
    assert len(await b.claim_due(NOW, owner="b", lease=timedelta(minutes=5), limit=1)) == 1


async def test_a_stale_write_loses_and_writes_nothing(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    a, b = stores
    [n] = await a.create([notification(1)], [])
    event = Event(at=NOW, notification_id=n.id, kind=EventKind.CANCELLED)
    [won] = await a.save([Change(n.model_copy(update={"status": Status.CANCELLED}), [event])])
    [lost] = await b.save(
        [
            Change(
                n.model_copy(update={"status": Status.ACKNOWLEDGED}),
                [event],
                opt_outs=[(Medium.SMS, "+16175550123")],
            )
        ]
    )
    assert won is not None
    assert won.version == 1
    assert lost is None
    stored = await b.get(n.id)
    assert stored is not None
    assert stored.status is Status.CANCELLED
    assert len(await b.events()) == 1
    assert await b.opted_out([(Medium.SMS, "+16175550123")]) == set()


LATER = NOW + timedelta(seconds=1)
WENT_OUT = {
    "sent": {"status": AttemptStatus.SENT, "provider_id": "SM1", "sent_at": LATER},
    # A status callback can bring the provider id before the send's own answer is recorded.
    "id from a callback": {"status": AttemptStatus.DELIVERED, "provider_id": "SM1"},
    # A runner that died mid-send: never resent, but counted as sent when it started.
    "recovered": {"status": AttemptStatus.UNKNOWN, "sent_at": NOW},
}


@pytest.mark.parametrize("went_out", WENT_OUT.values(), ids=WENT_OUT.keys())
async def test_an_attempt_is_indexed_once_it_went_out(
    tmp_path: Path, went_out: dict[str, Any]
) -> None:
    store = SQLiteStore(tmp_path / "index.db")
    await store.open()
    [n] = await store.create([notification(1)], [])
    sending = Attempt(
        id=f"{n.id}.0.0.0",
        notification_id=n.id,
        pass_=0,
        step=0,
        channel="sms",
        medium=Medium.SMS,
        address="+16175550123",
        status=AttemptStatus.SENDING,
        created_at=NOW,
        updated_at=NOW,
    )
    [n] = await store.save(
        [Change(n.model_copy(update={"attempts": (sending,)}), attempts=[sending])]
    )
    assert n is not None
    with closing(sqlite3.connect(tmp_path / "index.db")) as index:
        assert index.execute("SELECT COUNT(*) FROM attempts").fetchone() == (0,)
    out = sending.model_copy(update={**went_out, "updated_at": LATER})
    moved_on = n.model_copy(update={"attempts": (out,), "updated_at": LATER})
    await store.save([Change(moved_on, attempts=[out])])
    if out.provider_id is not None:
        found = await store.find_by_provider_id(out.provider_id)
        assert found is not None
        assert found.id == n.id
    if out.sent_at is not None:
        latest = await store.latest_sent_to(Medium.SMS, "+16175550123", since=NOW)
        assert latest is not None
        assert latest.id == n.id
    await store.close()


async def test_only_the_attempts_a_change_lists_are_indexed(tmp_path: Path) -> None:
    """The store writes the attempts a change names, not those its timestamps suggest."""
    store = SQLiteStore(tmp_path / "listed.db")
    await store.open()
    [n] = await store.create([notification(1)], [])
    listed, unlisted = (
        Attempt(
            id=f"{n.id}.0.{step}.0",
            notification_id=n.id,
            pass_=0,
            step=step,
            channel="sms",
            medium=Medium.SMS,
            address="+16175550123",
            status=AttemptStatus.SENT,
            provider_id=f"SM{step}",
            created_at=NOW,
            updated_at=NOW,  # both stamped with the notification's own time
            sent_at=NOW,
        )
        for step in (0, 1)
    )
    both = n.model_copy(update={"attempts": (listed, unlisted)})
    await store.save([Change(both, attempts=[listed])])
    found = await store.find_by_provider_id("SM0")
    assert found is not None
    assert found.id == n.id
    assert await store.find_by_provider_id("SM1") is None
    await store.close()


async def test_keys_are_unique_and_the_first_wins(stores: tuple[SQLiteStore, SQLiteStore]) -> None:
    a, b = stores
    [first] = await a.create([notification(1, key="k")], [])
    retry = notification(1, key="k").model_copy(update={"id": "n2"})
    [again] = await b.create([retry], [])
    assert again.id == first.id
    assert [n.id for n in await a.query()] == ["n1"]


async def test_a_key_conflict_rolls_the_whole_batch_back(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    a, b = stores
    await a.create([notification(1, key="k")], [])
    with pytest.raises(IdempotencyConflict, match="'k'"):
        await b.create([notification(3, key="fresh"), notification(2, key="k")], [])
    assert [n.id for n in await a.query()] == ["n1"]


async def test_a_rolled_back_batch_leaves_no_plan_snapshot_behind(tmp_path: Path) -> None:
    """Two requests of one batch share a key but not a recipient, under a plan never stored
    before: the batch is refused, and the plan can still be used afterwards."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    fresh = Plan(name="fresh", steps=[Step(channel="sms", template="t")])
    first, second = (notification(i, key="k") for i in (1, 2))
    batch = [first.model_copy(update={"plan": fresh}), second.model_copy(update={"plan": fresh})]
    with pytest.raises(IdempotencyConflict, match="'k'"):
        await store.create(batch, [])
    [stored] = await store.create([notification(3).model_copy(update={"plan": fresh})], [])
    assert (await store.get(stored.id)) == stored
    await store.close()


async def test_migrations_are_recorded_and_run_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    for _ in range(2):
        store = SQLiteStore(path)
        await store.open()
        await store.close()
    with sqlite3.connect(path) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version")]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert versions == [number for number, _ in migrations()]
    assert mode == "wal"


async def test_an_sqlite_library_too_old_for_the_store_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    store = SQLiteStore(tmp_path / "old.db")
    with pytest.raises(StoreError, match=r"SQLite 3\.31\.1.*needs 3\.35\.0 or newer"):
        await store.open()
    assert not (tmp_path / "old.db").exists()


async def test_next_due_and_a_closed_store() -> None:
    store = open_store("memory://")
    with pytest.raises(StoreError, match="not open"):
        await store.get("x")
    await store.open()
    assert await store.next_due() is None
    await store.create(
        [notification(1, due=NOW + timedelta(hours=1)), notification(2, due=None)], []
    )
    assert await store.next_due() == NOW + timedelta(hours=1)
    await store.close()


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:///", "file.db"])
def test_unknown_store_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_store(url)


def test_sqlite_urls_follow_sqlalchemy() -> None:
    relative = open_store("sqlite:///data/outreach.db")
    absolute = open_store("sqlite:////var/lib/outreach.db")
    assert isinstance(relative, SQLiteStore)
    assert isinstance(absolute, SQLiteStore)
    assert relative._path == "data/outreach.db"
    assert absolute._path == "/var/lib/outreach.db"


async def test_a_leased_row_is_not_due_for_the_run_loop_until_its_lease_lapses(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    a, _ = stores
    await a.create([notification(1)], [])
    await a.claim_due(NOW, owner="a", lease=timedelta(minutes=5), limit=1)
    assert await a.next_due() == NOW + timedelta(minutes=5)


async def test_text_sqlite_cannot_encode_is_a_store_error_naming_the_file(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    store, _ = stores
    with pytest.raises(StoreError, match=r"shared\.db.*UTF-8"):
        await store.remember("sendgrid:\ud83d", NOW)  # a lone surrogate: not encodable
    with pytest.raises(StoreError, match="UTF-8"):
        await store.suppress(Medium.EMAIL, "ann\ud83d@example.com", "test", NOW)
    assert await store.remember("sendgrid:ok", NOW)  # the store itself is fine


async def test_as_stored_is_what_the_store_gives_back(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    """``start()`` trial-renders ``as_stored(context)``: it must be the store's own round trip."""
    first, _ = stores
    context: dict[str, Any] = {
        "when": NOW,
        "delay": timedelta(minutes=90),
        "price": Decimal("19.90"),
        "seats": {12: "12A", 13: ("13B", "13C")},
        "ids": uuid.UUID(int=7),
        "status": Status.ACTIVE,
        "nan": float("nan"),
        "raw": b"bytes",
        "big": 2**70,
        "fare": 0.1 + 0.2,
        "nested": [{"at": NOW}, {1.5, 2.5}],
    }
    n = notification(1).model_copy(update={"context": context})
    await first.create([n], [])
    stored = await first.get("n1")
    assert stored is not None
    assert as_stored(context) == stored.context
