"""The embedded default store: one SQLite file, shareable by a CLI, a server and workers.

The file runs in WAL mode with a busy timeout, transactions are short and writes take the lock
up front (``BEGIN IMMEDIATE``), so several processes can use one file. SQL runs on one private
thread that owns the connection, keeping the event loop free while SQLite works; records are
turned into rows and back on the event loop's thread, so the store's thread spends its time in
SQLite (which lets go of Python's lock) rather than competing for the lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from outreach._models import Event, Medium, Notification, Plan, Status
from outreach.exceptions import IdempotencyConflict, StoreError
from outreach.stores import Change
from outreach.stores._codec import (
    dump_data,
    dump_notification,
    from_micros,
    load_event,
    load_notification,
    to_micros,
)

T = TypeVar("T")

_COLUMNS = "plan_id, body"
_OLDEST_SQLITE = (3, 35, 0)  # claims use UPDATE ... RETURNING
_INSERT_NOTIFICATION = """
    INSERT OR IGNORE INTO notifications
        (id, key, campaign, parent_id, status, plan_id, due_at, version, created_at, body)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPSERT_ATTEMPT = """
    INSERT INTO attempts
        (id, notification_id, medium, address, sender, provider_id, status, sent_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        sender = excluded.sender, provider_id = excluded.provider_id,
        status = excluded.status, sent_at = excluded.sent_at
"""
_UPDATE_NOTIFICATION = """
    UPDATE notifications SET
        status = ?, due_at = ?, version = ?, body = ?,
        lease_until = CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END,
        lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END
    WHERE id = ? AND version = ?
"""
_INSERT_PLAN = "INSERT OR IGNORE INTO plans (id, body) VALUES (?, ?)"
_INSERT_SUPPRESSION = """
    INSERT OR IGNORE INTO suppressions (medium, address, reason, created_at) VALUES (?, ?, ?, ?)
"""
_INSERT_EVENT = """
    INSERT INTO events (at, notification_id, kind, attempt_id, data) VALUES (?, ?, ?, ?, ?)
"""


def _attempt_rows(n: Notification) -> list[tuple[Any, ...]]:
    """Index rows for the attempts a change touched (the engine stamps them with its time).

    Only an attempt that went out can be looked up (by its provider id, or by who it was sent
    to and when), so one still ``sending`` gets its row when its send is recorded.
    """
    return [
        (a.id, n.id, a.medium, a.address, a.sender, a.provider_id, a.status, to_micros(a.sent_at))
        for a in n.attempts
        if a.updated_at == n.updated_at and (a.sent_at is not None or a.provider_id is not None)
    ]


def _event_rows(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    return [
        (to_micros(e.at), e.notification_id, e.kind, e.attempt_id, dump_data(e.data))
        for e in events
    ]


def _insert_row(n: Notification, plan_id: str) -> tuple[Any, ...]:
    return (
        n.id,
        n.key,
        n.campaign,
        n.parent_id,
        n.status,
        plan_id,
        to_micros(n.due_at),
        n.version,
        to_micros(n.created_at),
        dump_notification(n),
    )


@dataclass(slots=True)
class _Rows:
    """Rows read on the store's thread, with the bodies of plans not parsed here yet."""

    rows: list[tuple[str, str]]
    plans: dict[str, str]


@dataclass(slots=True)
class _Plans:
    """The plans of a batch of new notifications: fingerprints by plan object, and the
    snapshots not stored yet."""

    fingerprints: dict[int, str]
    new: dict[str, Plan]

    def rows(self) -> list[tuple[str, str]]:
        return [(plan_id, plan.model_dump_json()) for plan_id, plan in self.new.items()]


@dataclass(slots=True)
class _Encoded:
    """One change turned into statement parameters (on the event loop's thread)."""

    stored: Notification
    update: tuple[Any, ...]
    attempts: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    children: list[tuple[Any, ...]]
    opt_outs: list[tuple[Any, ...]]


def migrations() -> list[tuple[int, str]]:
    """The numbered schema scripts shipped with the package, in order."""
    folder = resources.files("outreach.stores") / "sql" / "sqlite"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(script: str) -> Iterator[str]:
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


class SQLiteStore:
    """A store in one SQLite file (``":memory:"`` for a private in-memory database)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self._path = str(path)
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._plans: dict[str, Plan] = {}  # parsed snapshots of committed plans

    # plumbing

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError("the store is not open; use 'async with AsyncClient(...)'")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self._path}: {exc}") from exc

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _with_plans(self, rows: list[tuple[str, str]]) -> _Rows:
        """``rows`` plus the stored bodies of the plans they use that are not parsed yet."""
        plans = {}
        for plan_id in {plan_id for plan_id, _ in rows if plan_id not in self._plans}:
            row = self.db.execute("SELECT body FROM plans WHERE id = ?", (plan_id,)).fetchone()
            if row is None:
                raise StoreError(f"plan snapshot {plan_id} is missing from {self._path}")
            plans[plan_id] = row[0]
        return _Rows(rows, plans)

    def _decode(self, read: _Rows, plans: dict[str, Plan] | None = None) -> list[Notification]:
        """Notifications from rows, parsing new plans into ``plans`` (the cache by default).

        Runs on the event loop's thread (but for the rare key conflict ``_create`` checks in
        its transaction), so the store's thread holds Python's lock no longer than SQLite needs.
        """
        plans = self._plans if plans is None else plans
        for plan_id, body in read.plans.items():
            plans.setdefault(plan_id, Plan.model_validate_json(body))
        return [load_notification(body, plans[plan_id]) for plan_id, body in read.rows]

    def _plans_of(self, notifications: Sequence[Notification]) -> _Plans:
        """Fingerprint each distinct plan once (equal plans are usually one object)."""
        fingerprints: dict[int, str] = {}
        new: dict[str, Plan] = {}
        for n in notifications:
            if id(n.plan) not in fingerprints:
                plan_id = fingerprints[id(n.plan)] = n.plan.fingerprint
                if plan_id not in self._plans:
                    new[plan_id] = n.plan
        return _Plans(fingerprints, new)

    def _encode(self, change: Change, fingerprints: dict[int, str]) -> _Encoded:
        n = change.notification
        stored = n.model_copy(update={"version": n.version + 1})
        update = (
            n.status,
            to_micros(n.due_at),
            stored.version,
            dump_notification(stored),
            change.owner,
            change.owner,
            n.id,
            n.version,
        )
        reported = to_micros(n.updated_at)
        return _Encoded(
            stored,
            update,
            _attempt_rows(n),
            _event_rows(change.events),
            [_insert_row(child, fingerprints[id(child.plan)]) for child in change.children],
            [(m, a, "provider reported an opt-out", reported) for m, a in change.opt_outs],
        )

    # lifecycle

    async def open(self) -> None:
        if sqlite3.sqlite_version_info < _OLDEST_SQLITE:
            oldest = ".".join(map(str, _OLDEST_SQLITE))
            raise StoreError(
                f"SQLite store {self._path}: this Python uses SQLite {sqlite3.sqlite_version},"
                f" and the store needs {oldest} or newer (a newer Python, or a newer system"
                " SQLite library)"
            )
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="outreach-sqlite")
            await self._call(self._open)

    def _open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self._path, isolation_level=None, timeout=self._busy_timeout, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        self._db = db
        self._migrate()

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            for version, script in migrations():
                if version > current:
                    for statement in _statements(script):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    async def close(self) -> None:
        if self._executor is not None:
            await self._call(self.db.close)
            self._executor.shutdown(wait=True)
            self._executor = None
            self._db = None

    # notifications

    async def create(
        self, notifications: Sequence[Notification], events: Sequence[Event]
    ) -> list[Notification]:
        plans = self._plans_of(notifications)
        rows = [_insert_row(n, plans.fingerprints[id(n.plan)]) for n in notifications]
        taken = await self._call(
            self._create, notifications, rows, plans.rows(), _event_rows(events)
        )
        self._plans.update(plans.new)  # committed: safe to cache (never before, a rollback)
        return [new if old is None else old for new, old in zip(notifications, taken, strict=True)]

    def _create(
        self,
        notifications: Sequence[Notification],
        rows: Sequence[tuple[Any, ...]],
        plans: Sequence[tuple[str, str]],
        events: Sequence[tuple[Any, ...]],
    ) -> list[Notification | None]:
        """Insert; per notification, None if it was stored, else the one holding its key."""
        taken: list[Notification | None] = []
        with self._write() as db:
            db.executemany(_INSERT_PLAN, plans)
            for new, row in zip(notifications, rows, strict=True):
                old = None
                if not db.execute(_INSERT_NOTIFICATION, row).rowcount:
                    found = db.execute(
                        f"SELECT {_COLUMNS} FROM notifications WHERE key = ? OR id = ?",
                        (new.key, new.id),
                    ).fetchone()
                    # Rare: a repeated key. Its plan may be uncommitted (inserted just now), so
                    # it is parsed into a copy of the cache, not the cache: a rollback follows.
                    [old] = self._decode(self._with_plans([found]), dict(self._plans))
                    if not new.same_request(old):
                        raise IdempotencyConflict(  # rolls the whole batch back
                            f"key {new.key!r} is already used by notification {old.id} "
                            "with a different recipient or plan"
                        )
                taken.append(old)
            created = {n.id for n, old in zip(notifications, taken, strict=True) if old is None}
            db.executemany(_INSERT_EVENT, [e for e in events if e[1] in created])
        return taken

    async def _read(self, sql: str, *args: Any) -> list[Notification]:
        """Run a query of ``_COLUMNS`` on the store's thread; decode the rows on this one."""
        return self._decode(await self._call(self._fetch, sql, args))

    def _fetch(self, sql: str, args: Sequence[Any]) -> _Rows:
        return self._with_plans(self.db.execute(sql, args).fetchall())

    async def _read_one(self, sql: str, *args: Any) -> Notification | None:
        found = await self._read(sql, *args)
        return found[0] if found else None

    async def get(self, notification_id: str) -> Notification | None:
        return await self._read_one(
            f"SELECT {_COLUMNS} FROM notifications WHERE id = ?", notification_id
        )

    async def get_by_key(self, key: str) -> Notification | None:
        return await self._read_one(f"SELECT {_COLUMNS} FROM notifications WHERE key = ?", key)

    async def query(
        self, *, status: Status | None = None, campaign: str | None = None, limit: int = 1000
    ) -> list[Notification]:
        where, args = ["1 = 1"], []
        if status is not None:
            where.append("status = ?")
            args.append(str(status))
        if campaign is not None:
            where.append("campaign = ?")
            args.append(campaign)
        return await self._read(
            f"SELECT {_COLUMNS} FROM notifications WHERE {' AND '.join(where)}"
            " ORDER BY created_at, id LIMIT ?",
            *args,
            limit,
        )

    async def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[Notification]:
        return self._decode(await self._call(self._claim_due, now, owner, lease, limit))

    def _claim_due(self, now: datetime, owner: str, lease: timedelta, limit: int) -> _Rows:
        at = to_micros(now)
        with self._write() as db:
            rows = db.execute(
                f"""
                UPDATE notifications SET lease_owner = ?, lease_until = ?
                WHERE id IN (
                    SELECT id FROM notifications
                    WHERE due_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
                    ORDER BY due_at LIMIT ?
                )
                RETURNING {_COLUMNS}
                """,
                (owner, to_micros(now + lease), at, at, limit),
            ).fetchall()
        return self._with_plans(rows)

    async def save(self, changes: Sequence[Change]) -> list[Notification | None]:
        plans = self._plans_of([child for change in changes for child in change.children])
        encoded = [self._encode(change, plans.fingerprints) for change in changes]
        saved = await self._call(self._save, encoded, plans.rows())
        self._plans.update(plans.new)
        return [e.stored if ok else None for e, ok in zip(encoded, saved, strict=True)]

    def _save(self, changes: Sequence[_Encoded], plans: Sequence[tuple[str, str]]) -> list[bool]:
        saved = []
        attempts: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        children: list[tuple[Any, ...]] = []
        opt_outs: list[tuple[Any, ...]] = []
        with self._write() as db:
            db.executemany(_INSERT_PLAN, plans)
            for change in changes:
                updated = db.execute(_UPDATE_NOTIFICATION, change.update).rowcount
                saved.append(bool(updated))
                if not updated:
                    continue
                attempts += change.attempts
                events += change.events
                children += change.children
                opt_outs += change.opt_outs
            # One statement per table for the whole group: what makes group commit pay.
            # A follow-up whose key is taken was started before: it is not started twice.
            db.executemany(_INSERT_NOTIFICATION, children)
            db.executemany(_UPSERT_ATTEMPT, attempts)
            db.executemany(_INSERT_EVENT, events)
            db.executemany(_INSERT_SUPPRESSION, opt_outs)
        return saved

    async def next_due(self) -> datetime | None:
        return await self._call(self._next_due)

    def _next_due(self) -> datetime | None:
        # A leased row is not due for anyone else before its lease lapses.
        value = self.db.execute(
            "SELECT MIN(MAX(due_at, COALESCE(lease_until, 0))) FROM notifications"
            " WHERE due_at IS NOT NULL"
        ).fetchone()[0]
        return None if value is None else from_micros(value)

    async def find_by_provider_id(self, provider_id: str) -> Notification | None:
        return await self._read_one(
            f"SELECT {_COLUMNS} FROM notifications WHERE id = ("
            " SELECT notification_id FROM attempts WHERE provider_id = ? LIMIT 1)",
            provider_id,
        )

    async def latest_sent_to(
        self, medium: Medium, address: str, *, since: datetime, sender: str | None = None
    ) -> Notification | None:
        return await self._read_one(
            f"""
            SELECT {_COLUMNS} FROM notifications WHERE id = (
                SELECT notification_id FROM attempts
                WHERE medium = ? AND address = ? AND sent_at >= ?
                  AND (? IS NULL OR sender IS NULL OR sender = ?)
                ORDER BY sent_at DESC LIMIT 1
            )
            """,
            medium,
            address,
            to_micros(since),
            sender,
            sender,
        )

    async def remember(self, key: str, now: datetime) -> bool:
        return await self._call(self._remember, key, now)

    def _remember(self, key: str, now: datetime) -> bool:
        with self._write() as db:
            return bool(
                db.execute(
                    "INSERT OR IGNORE INTO webhook_receipts (key, received_at) VALUES (?, ?)",
                    (key, to_micros(now)),
                ).rowcount
            )

    async def forget(self, key: str) -> None:
        await self._call(self._forget, key)

    def _forget(self, key: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM webhook_receipts WHERE key = ?", (key,))

    # event log and suppressions

    async def events(self, since: int = 0, limit: int = 1000) -> list[Event]:
        return await self._call(self._events, since, limit)

    def _events(self, since: int, limit: int) -> list[Event]:
        rows = self.db.execute(
            "SELECT seq, at, notification_id, kind, attempt_id, data FROM events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (since, limit),
        ).fetchall()
        return [load_event(*row) for row in rows]

    async def opted_out(self, addresses: Sequence[tuple[Medium, str]]) -> set[tuple[Medium, str]]:
        return await self._call(self._opted_out, addresses)

    def _opted_out(self, addresses: Sequence[tuple[Medium, str]]) -> set[tuple[Medium, str]]:
        wanted = set(addresses)
        found: set[tuple[Medium, str]] = set()
        values = sorted({address for _, address in wanted})
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            rows = self.db.execute(
                "SELECT medium, address FROM suppressions"
                f" WHERE address IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update((Medium(m), a) for m, a in rows if (Medium(m), a) in wanted)
        return found

    async def suppress(self, medium: Medium, address: str, reason: str, now: datetime) -> None:
        await self._call(self._suppress, medium, address, reason, now)

    def _suppress(self, medium: Medium, address: str, reason: str, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO suppressions (medium, address, reason, created_at)"
                " VALUES (?, ?, ?, ?)",
                (medium, address, reason, to_micros(now)),
            )

    async def unsuppress(self, medium: Medium, address: str) -> None:
        await self._call(self._unsuppress, medium, address)

    def _unsuppress(self, medium: Medium, address: str) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM suppressions WHERE medium = ? AND address = ?", (medium, address)
            )
