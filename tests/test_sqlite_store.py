"""What only the SQLite store has: its library's version, file paths, WAL, its migrations.

The behaviour every store shares (leases, version checks, keys, the attempt index, the event
log) is tested on memory, SQLite and PostgreSQL alike in ``test_stores.py``.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from outreach import Notification, Plan, Recipient, Step
from outreach._models import Event, EventKind
from outreach.exceptions import ConfigurationError, StoreError
from outreach.stores import EventFilter, open_store
from outreach.stores import sqlite as module
from outreach.stores.sqlite import SQLiteStore, migrations

pytestmark = pytest.mark.integration


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


async def test_text_sqlite_cannot_encode_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from outreach._models import Medium

    now = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    store = SQLiteStore(tmp_path / "shared.db")
    await store.open()
    try:
        with pytest.raises(StoreError, match=r"shared\.db.*UTF-8"):
            await store.remember("sendgrid:\ud83d", now)  # a lone surrogate: not encodable
        with pytest.raises(StoreError, match="UTF-8"):
            await store.suppress(Medium.EMAIL, "ann\ud83d@example.com", "test", now)
        assert await store.remember("sendgrid:ok", now)  # the store itself is fine
    finally:
        await store.close()


async def test_a_file_made_before_attention_upgrades_and_finds_old_notifications_by_recipient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipient column is read from each stored record: rows written before the
    migration have it too, with nothing rewritten."""
    before = [(version, script) for version, script in migrations() if version < 3]
    monkeypatch.setattr(module, "migrations", lambda: before)
    now = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    old = Notification(
        id="n1",
        recipient=Recipient(id="pax-17"),
        plan=Plan(name="p", steps=[Step(channel="sms", template="t")]),
        created_at=now,
        updated_at=now,
    )
    store = SQLiteStore(tmp_path / "old.db")
    await store.open()
    await store.create([old], [Event(at=now, notification_id="n1", kind=EventKind.CREATED)])
    await store.close()

    monkeypatch.undo()
    store = SQLiteStore(tmp_path / "old.db")
    await store.open()
    [created] = await store.events(where=EventFilter(recipient_id="pax-17"))
    assert created.notification_id == "n1"
    assert await store.attentions() == []
    await store.close()


async def test_an_in_memory_store_runs_on_the_loop_thread_and_a_file_on_its_own(
    tmp_path: Path,
) -> None:
    def store_threads() -> int:
        return sum(t.name.startswith("outreach-sqlite") for t in threading.enumerate())

    before = store_threads()  # other tests' stores, if any are still open
    memory = open_store("memory://")
    await memory.open()
    assert await memory.next_due() is None
    assert store_threads() == before
    file = SQLiteStore(tmp_path / "x.db")
    await file.open()
    assert await file.next_due() is None
    assert store_threads() == before + 1
    await file.close()
    await memory.close()
    with pytest.raises(StoreError, match="not open"):
        await memory.next_due()
