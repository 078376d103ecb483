"""The embedded default store: one SQLite file, shareable by a CLI, a server and workers.

The file runs in WAL mode with a busy timeout, transactions are short and writes take the lock
up front (``BEGIN IMMEDIATE``), so several processes can use one file. SQL runs on one private
thread that owns the connection, keeping the event loop free while SQLite works; records are
turned into rows and back on the event loop's thread, so the store's thread spends its time in
SQLite (which lets go of Python's lock) rather than competing for the lock. An in-memory
database has no disk and no other process to wait for, so its SQL runs on the event loop's
thread, sparing every call the handoff to another thread and back.

The statements are named blocks of ``sql/sqlite/queries.sql``, with named parameters; the
numbered files beside it are the schema's migrations.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from outreach._clock import SystemClock
from outreach._models import Attention, Event, Medium, Notification
from outreach.exceptions import ConfigurationError, IdempotencyConflict, StoreError
from outreach.stores import (
    Change,
    Claimed,
    EventFilter,
    Limit,
    Pruned,
    Stuck,
    _prune,
    _queries,
    _stuck,
)
from outreach.stores._codec import from_micros, load_attention, load_event, to_micros
from outreach.stores._pacing import SWEEP_EVERY, Charge, PaceWalk
from outreach.stores._rows import (
    Encoded,
    Encoder,
    NamedReads,
    Params,
    PlanCache,
    Rows,
    filtered_events,
    resolved_event,
    taken_event,
    unanswered_event,
)

T = TypeVar("T")

_SQL = _queries.load("sqlite")
_OLDEST_SQLITE = (3, 35, 0)  # claims use UPDATE ... RETURNING
_ENCODER = Encoder(to_micros)
_MICROSECOND = timedelta(microseconds=1)


def _micros(delay: timedelta) -> int:
    return delay // _MICROSECOND


def _limit_params(limit: Limit) -> Params:
    return {"scope": limit.scope, "key": limit.key, "step": round(limit.step / _MICROSECOND)}


def _open_attentions(db: sqlite3.Connection, changes: Sequence[Encoded]) -> set[str]:
    """Of the attention records ``changes`` add causes to, those still open."""
    ids = [u["id"] for change in changes for u in change.attention_updates]
    if not ids:
        return set()
    return {row[0] for row in db.execute(_SQL["open_attentions"], {"ids": json.dumps(ids)})}


def migrations() -> list[tuple[int, str]]:
    """The numbered schema scripts shipped with the package, in order."""
    return _queries.migrations("sqlite")


def _statements(script: str) -> Iterator[str]:
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


class SQLiteStore(NamedReads):
    """A store in one SQLite file (``":memory:"`` for a private in-memory database)."""

    encoder = _ENCODER

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self._path = str(path)
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._running = False
        self._db: sqlite3.Connection | None = None
        self._plans = PlanCache()
        self._paced = 0  # sends paced since the last sweep of spent buckets

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path})"

    # plumbing

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._running:
            raise StoreError("the store is not open; use 'async with AsyncClient(...)'")
        try:
            loop = asyncio.get_running_loop()
            if self._executor is None:  # in memory: nothing to wait for, so no handoff
                done: asyncio.Future[T] = loop.create_future()
                loop.call_soon(done.set_result, fn(*args))
                return await done
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self._path}: {exc}") from exc
        except UnicodeEncodeError as exc:  # sqlite3 binds text as UTF-8: a lone surrogate fails
            raise StoreError(
                f"SQLite store {self._path}: cannot store text that is not valid UTF-8 "
                f"({exc.reason} at position {exc.start})"
            ) from exc

    @property
    def path(self) -> str:
        """The database file (``:memory:`` for none)."""
        return self._path

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

    def _with_plans(self, rows: list[tuple[str, str]]) -> Rows:
        """``rows`` plus the stored bodies of the plans they use that are not parsed yet.

        The rows are decoded on the event loop's thread (but for the rare key conflict
        ``_create`` checks in its transaction), so the store's thread holds Python's lock no
        longer than SQLite needs.
        """
        plans = {}
        for plan_id in self._plans.missing(rows):
            row = self.db.execute(_SQL["get_plan"], {"id": plan_id}).fetchone()
            if row is None:
                raise StoreError(f"plan snapshot {plan_id} is missing from {self._path}")
            plans[plan_id] = row[0]
        return Rows(rows, plans)

    # lifecycle

    async def open(self) -> None:
        await self._start(self._open)

    async def open_existing(self) -> None:
        """Open the file only if it is there and at the current schema version: nothing is
        created or migrated (``ConfigurationError`` otherwise). ``open()`` then does nothing."""
        await self._start(self._open if self._path == ":memory:" else self._open_existing)

    async def _start(self, connect: Callable[[], None]) -> None:
        if sqlite3.sqlite_version_info < _OLDEST_SQLITE:
            oldest = ".".join(map(str, _OLDEST_SQLITE))
            raise StoreError(
                f"SQLite store {self._path}: this Python uses SQLite {sqlite3.sqlite_version},"
                f" and the store needs {oldest} or newer (a newer Python, or a newer system"
                " SQLite library)"
            )
        if not self._running:
            self._running = True
            if self._path != ":memory:":
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="outreach-sqlite")
            try:
                await self._call(connect)
            except BaseException:
                # A failed open leaves no thread behind (and close() has nothing to do).
                self._running = False
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                    self._executor = None
                if self._db is not None:
                    self._db.close()
                    self._db = None
                raise

    def _open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect(self._path)
        self._pragmas(self._db)
        self._migrate()

    def _open_existing(self) -> None:
        upgrade = "`outreach db upgrade` creates and migrates it"
        if not Path(self._path).is_file():
            raise ConfigurationError(f"no store at {self._path} (check the store URL; {upgrade})")
        uri = f"file:{quote(str(Path(self._path).resolve()))}?mode=rw"  # never creates a file
        self._db = db = self._connect(uri, uri=True)
        try:
            found = db.execute(_SQL["has_schema_version"]).fetchone()[0]
            current = db.execute(_SQL["schema_version"]).fetchone()[0] if found else None
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"{self._path} is not an outreach store ({exc})") from exc
        newest = migrations()[-1][0]
        if current is None:
            raise ConfigurationError(f"{self._path} is not an outreach store yet ({upgrade})")
        _queries.refuse_newer(current, newest, self._path)
        if current < newest:
            raise ConfigurationError(
                f"the store {self._path} is at schema version {current} and this outreach"
                f" needs {newest}: run `outreach db upgrade`"
            )
        self._pragmas(db, journal=False)  # the file keeps the journal mode it was made with

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        return sqlite3.connect(
            target,
            isolation_level=None,
            timeout=self._busy_timeout,
            check_same_thread=False,
            uri=uri,
        )

    @staticmethod
    def _pragmas(db: sqlite3.Connection, *, journal: bool = True) -> None:
        if journal:  # persistent: a write to the file
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute(_SQL["create_schema_version"])
            current = db.execute(_SQL["schema_version"]).fetchone()[0] or 0
            _queries.refuse_newer(current, migrations()[-1][0], self._path)
            for version, script in migrations():
                if version > current:
                    for statement in _statements(script):
                        db.execute(statement)
                    db.execute(_SQL["record_migration"], {"version": version})

    async def close(self) -> None:
        if self._running:
            await self._call(self.db.close)
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._running = False
            self._db = None

    # notifications

    async def create(
        self, notifications: Sequence[Notification], events: Sequence[Event]
    ) -> list[Notification]:
        plans = self._plans.of(notifications)
        rows = [_ENCODER.insert(n, plans.fingerprints[id(n.plan)]) for n in notifications]
        taken = await self._call(
            self._create, notifications, rows, plans.rows(), _ENCODER.events(events)
        )
        self._plans.committed(plans)
        return [new if old is None else old for new, old in zip(notifications, taken, strict=True)]

    def _create(
        self,
        notifications: Sequence[Notification],
        rows: Sequence[Params],
        plans: Sequence[Params],
        events: Sequence[Params],
    ) -> list[Notification | None]:
        """Insert; per notification, None if it was stored, else the one holding its key."""
        taken: list[Notification | None] = []
        with self._write() as db:
            db.executemany(_SQL["insert_plan"], plans)
            for new, row in zip(notifications, rows, strict=True):
                old = None
                if not db.execute(_SQL["insert_notification"], row).rowcount:
                    found = db.execute(
                        _SQL["get_by_key_or_id"], {"key": new.key, "id": new.id}
                    ).fetchone()
                    # Rare: a repeated key. Its plan may be uncommitted (inserted just now), so
                    # it is parsed into a copy of the cache, not the cache: a rollback follows.
                    [old] = self._plans.decode(self._with_plans([found]), dict(self._plans.plans))
                    if not new.same_request(old):
                        raise IdempotencyConflict(  # rolls the whole batch back
                            f"key {new.key!r} is already used by notification {old.id} "
                            "with a different recipient or plan"
                        )
                taken.append(old)
            created = {n.id for n, old in zip(notifications, taken, strict=True) if old is None}
            db.executemany(
                _SQL["insert_event"], [e for e in events if e["notification_id"] in created]
            )
        return taken

    async def _read(self, query: str, **params: Any) -> list[Notification]:
        """Run a query of ``plan_id, body`` rows on the store's thread; decode them on this one."""
        return self._plans.decode(await self._call(self._fetch, _SQL[query], params))

    def _fetch(self, sql: str, params: Params) -> Rows:
        return self._with_plans(self.db.execute(sql, params).fetchall())

    async def _tuples(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        return await self._call(self._fetch_tuples, _SQL[query], params)

    def _fetch_tuples(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params).fetchall()

    async def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> Claimed:
        read, epochs = await self._call(self._claim_due, now, owner, lease, limit)
        return Claimed(self._plans.decode(read), epochs)

    def _claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int
    ) -> tuple[Rows, dict[str, int]]:
        claim = {
            "owner": owner,
            "lease_until": to_micros(now + lease),
            "now": to_micros(now),
            "limit": limit,
        }
        with self._write() as db:
            rows = db.execute(_SQL["claim_due"], claim).fetchall()
        epochs = {nid: epoch for nid, epoch, _, _ in rows}
        return self._with_plans([(plan_id, body) for _, _, plan_id, body in rows]), epochs

    async def renew(self, leases: Mapping[str, int], *, owner: str, until: datetime) -> set[str]:
        if not leases:
            return set()
        return await self._call(self._renew, dict(leases), owner, until)

    def _renew(self, leases: dict[str, int], owner: str, until: datetime) -> set[str]:
        held = json.dumps([[nid, epoch] for nid, epoch in leases.items()])
        renewal = {"owner": owner, "lease_until": to_micros(until), "held": held}
        with self._write() as db:
            return {row[0] for row in db.execute(_SQL["renew"], renewal).fetchall()}

    async def save(self, changes: Sequence[Change]) -> list[Notification | None]:
        plans = self._plans.of([child for change in changes for child in change.children])
        encoded = [_ENCODER.change(change, plans.fingerprints) for change in changes]
        saved = await self._call(self._save, encoded, plans.rows())
        self._plans.committed(plans)
        return [e.stored if ok else None for e, ok in zip(encoded, saved, strict=True)]

    def _save(self, changes: Sequence[Encoded], plans: Sequence[Params]) -> list[bool]:
        saved = []
        attempts: list[Params] = []
        events: list[Params] = []
        children: list[Params] = []
        opt_outs: list[Params] = []
        attentions: list[Params] = []
        amended: list[Params] = []
        with self._write() as db:
            db.executemany(_SQL["insert_plan"], plans)
            still_open = _open_attentions(db, changes)
            for change in changes:
                updated = all(u["id"] in still_open for u in change.attention_updates) and (
                    db.execute(_SQL["update_notification"], change.update).rowcount
                )
                saved.append(bool(updated))
                if not updated:
                    continue
                amended += change.attention_updates
                attempts += change.attempts
                events += change.events
                children += change.children
                opt_outs += change.opt_outs
                attentions += change.attentions
            # One statement per table for the whole group: what makes group commit pay.
            # A follow-up whose key is taken was started before: it is not started twice.
            db.executemany(_SQL["insert_notification"], children)
            db.executemany(_SQL["upsert_attempt"], attempts)
            db.executemany(_SQL["insert_event"], events)
            db.executemany(_SQL["insert_suppression"], opt_outs)
            db.executemany(_SQL["insert_attention"], attentions)
            db.executemany(_SQL["amend_attention"], amended)
        return saved

    async def next_due(self) -> datetime | None:
        return await self._call(self._next_due)

    def _next_due(self) -> datetime | None:
        value = self.db.execute(_SQL["next_due"]).fetchone()[0]
        return None if value is None else from_micros(value)

    async def remember(self, key: str, now: datetime) -> bool:
        return await self._call(self._remember, key, now)

    def _remember(self, key: str, now: datetime) -> bool:
        with self._write() as db:
            receipt = {"key": key, "received_at": to_micros(now)}
            return bool(db.execute(_SQL["remember"], receipt).rowcount)

    async def release(self, notification_ids: Sequence[str], *, owner: str) -> int:
        return await self._call(self._release, list(notification_ids), owner)

    def _release(self, notification_ids: list[str], owner: str) -> int:
        with self._write() as db:
            cursor = db.execute(
                _SQL["release"], {"ids": json.dumps(notification_ids), "owner": owner}
            )
            return cursor.rowcount

    async def forget(self, key: str) -> None:
        await self._call(self._forget, key)

    def _forget(self, key: str) -> None:
        with self._write() as db:
            db.execute(_SQL["forget"], {"key": key})

    # operations

    async def schema_version(self) -> int:
        return await self._call(self._schema_version)

    def _schema_version(self) -> int:
        return int(self.db.execute(_SQL["schema_version"]).fetchone()[0] or 0)

    async def watch(self, heard: Callable[[], None]) -> None:
        """SQLite cannot tell other processes' writes: runners poll (same-process starts
        wake the client's own runner directly)."""

    async def prune(
        self,
        finished_before: datetime,
        *,
        receipts_before: datetime | None = None,
        batch: int = 500,
    ) -> Pruned:
        pruned = 0
        while found := await self._call(self._prune_batch, finished_before, batch):
            pruned += found
        cutoff = {"before": to_micros(_prune.receipts_cutoff(finished_before, receipts_before))}
        receipts = 0
        while found := await self._call(self._delete, "prune_receipts", cutoff | {"limit": batch}):
            receipts += found
        return Pruned(pruned, receipts)

    def _delete(self, query: str, params: Params) -> int:
        with self._write() as db:
            return db.execute(_SQL[query], params).rowcount

    def _prune_batch(self, before: datetime, batch: int) -> int:
        """Prune up to ``batch`` notifications in one transaction; how many."""
        query = {
            "before": to_micros(before),
            "before_iso": before.isoformat(),
            "statuses": json.dumps(_prune.FINISHED),
            "limit": batch,
        }
        with self._write() as db:
            rows = db.execute(_SQL["prunable"], query).fetchall()
            for notification_id, version, body in rows:
                row = {"id": notification_id, "version": version}
                db.execute(_SQL["prune_notification"], {**row, "body": _prune.anonymized(body)})
                db.execute(_SQL["prune_attempts"], row)
                db.execute(_SQL["prune_replies"], row)
        return len(rows)

    async def sweep(self, now: datetime, *, lapsed_before: datetime, limit: int) -> list[Stuck]:
        return await self._call(self._sweep, now, lapsed_before, limit)

    def _sweep(self, now: datetime, lapsed_before: datetime, limit: int) -> list[Stuck]:
        """Reads first: the write lock is taken only when there is something to log."""
        times = {"now": to_micros(now), "before": to_micros(lapsed_before), "limit": limit}
        found = _stuck.distinct(
            (row[0], reason)
            for query, reason in _stuck.QUERIES
            for row in self.db.execute(_SQL[query], times).fetchall()
        )[:limit]
        if found:
            with self._write() as db:
                db.executemany(_SQL["insert_event"], _ENCODER.events(_stuck.events(found, now)))
        return found

    # pacing

    async def pace(
        self, sends: Sequence[Sequence[Limit]], *, now: datetime | None, horizon: timedelta
    ) -> list[timedelta]:
        if not any(sends):
            return [timedelta(0)] * len(sends)
        return await self._call(self._pace, sends, now or SystemClock().now(), horizon)

    def _pace(
        self, sends: Sequence[Sequence[Limit]], now: datetime, horizon: timedelta
    ) -> list[timedelta]:
        walk = PaceWalk(sends, horizon)
        clock = {"now": to_micros(now), "horizon": _micros(horizon)}
        with self._write() as db:
            while charges := walk.next_round():
                delays = [self._charge_one(db, charge, clock) for charge in charges]
                walk.answer(charges, delays)
            db.executemany(_SQL["charge"], [_limit_params(limit) for limit in walk.refunds])
            self._paced += len(sends)
            if self._paced >= SWEEP_EVERY:
                self._paced = 0
                db.execute(_SQL["sweep_pacing"], {"now": clock["now"]})
        return walk.delays

    @staticmethod
    def _charge_one(db: sqlite3.Connection, charge: Charge, clock: Params) -> timedelta:
        limit = charge.limit
        params = {
            **clock,
            **_limit_params(limit),
            "after": _micros(charge.after),
            "tolerance": _micros(limit.tolerance),
        }
        (delay,) = db.execute(_SQL["pace"], params).fetchone()
        return timedelta(microseconds=delay)

    async def charge(self, limits: Sequence[Limit]) -> None:
        if limits:
            await self._call(self._charge, [_limit_params(limit) for limit in limits])

    def _charge(self, rows: list[Params]) -> None:
        with self._write() as db:
            db.executemany(_SQL["charge"], rows)

    # event log and suppressions

    async def events(
        self, since: int = 0, limit: int = 1000, where: EventFilter | None = None
    ) -> list[Event]:
        return await self._call(self._events, since, limit, where)

    def _events(self, since: int, limit: int, where: EventFilter | None) -> list[Event]:
        query, params = "events", {"since": since, "limit": limit}
        if where is not None:
            kinds = None if where.kinds is None else json.dumps(sorted(where.kinds))
            query, filters = filtered_events(where, kinds)
            params |= filters
        rows = self.db.execute(_SQL[query], params).fetchall()
        return [load_event(*row) for row in rows]

    # attention

    async def attentions(
        self,
        *,
        campaign: str | None = None,
        open: bool | None = True,
        recipient_id: str | None = None,
        limit: int = 1000,
    ) -> list[Attention]:
        params = {"campaign": campaign, "open": open, "recipient_id": recipient_id, "limit": limit}
        rows = await self._call(self._rows, "attentions", params)
        return [load_attention(row, from_micros) for row in rows]

    async def paged_out(self, *, limit: int) -> list[str]:
        rows = await self._call(self._rows, "paged_out", {"limit": limit})
        return [row[0] for row in rows]

    def _rows(self, query: str, params: Params) -> list[tuple[Any, ...]]:
        return self.db.execute(_SQL[query], params).fetchall()

    async def resolve_attention(
        self, attention_id: str, *, by: str, note: str | None, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        closing = {"resolved_at": to_micros(now), "resolved_by": by, "note": note}
        return await self._call(
            self._change_attention, "resolve_attention", attention_id, closing, resolved_event
        )

    async def take_attention(
        self, attention_id: str, *, by: str, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        taking = {"taken_by": by, "taken_at": to_micros(now)}
        return await self._call(
            self._change_attention, "take_attention", attention_id, taking, taken_event
        )

    async def unanswered_attention(
        self, attention_id: str, *, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        marking = {"unanswered_at": to_micros(now)}
        return await self._call(
            self._change_attention, "unanswered_attention", attention_id, marking, unanswered_event
        )

    def _change_attention(
        self,
        query: str,
        attention_id: str,
        params: Params,
        logged: Callable[[Attention], Event],
    ) -> tuple[Attention, Event | None] | None:
        with self._write() as db:
            changed = db.execute(_SQL[query], params | {"id": attention_id}).rowcount
            row = db.execute(_SQL["get_attention"], {"id": attention_id}).fetchone()
            if row is None:
                return None
            attention = load_attention(row, from_micros)
            if not changed:
                return attention, None
            event = logged(attention)
            seq = db.execute(_SQL["insert_event"], _ENCODER.events([event])[0]).lastrowid
        return attention, event.model_copy(update={"seq": seq})

    async def opted_out(self, addresses: Sequence[tuple[Medium, str]]) -> set[tuple[Medium, str]]:
        return await self._call(self._opted_out, addresses)

    def _opted_out(self, addresses: Sequence[tuple[Medium, str]]) -> set[tuple[Medium, str]]:
        wanted = set(addresses)
        values = json.dumps(sorted({address for _, address in wanted}))
        rows = self.db.execute(_SQL["opted_out"], {"addresses": values}).fetchall()
        return {(Medium(m), a) for m, a in rows if (Medium(m), a) in wanted}

    async def suppress(self, medium: Medium, address: str, reason: str, now: datetime) -> None:
        await self._call(self._suppress, medium, address, reason, now)

    def _suppress(self, medium: Medium, address: str, reason: str, now: datetime) -> None:
        row = {"medium": medium, "address": address, "reason": reason, "created_at": to_micros(now)}
        with self._write() as db:
            db.execute(_SQL["suppress"], row)

    async def unsuppress(self, medium: Medium, address: str) -> None:
        await self._call(self._unsuppress, medium, address)

    def _unsuppress(self, medium: Medium, address: str) -> None:
        with self._write() as db:
            db.execute(_SQL["unsuppress"], {"medium": medium, "address": address})
