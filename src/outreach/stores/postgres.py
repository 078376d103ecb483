"""The scale-out store: many runners, in many processes, sharing one PostgreSQL database.

Runners claim due work with one statement (``FOR UPDATE SKIP LOCKED`` in a CTE), so claimers
never wait for each other and never get the same row; every write is version-checked as in
SQLite, and a group of changes is one transaction, a statement per table.
Records use the same JSON encoding as the SQLite store (``_codec``, ``_rows``); times are
``timestamptz`` columns.

The statements are named blocks of ``sql/postgres/queries.sql``; the numbered files beside it
are the schema's migrations, applied by :meth:`PostgresStore.open` under an advisory lock so
that processes starting together do not race. ``schema=`` keeps the tables in a schema of their
own (created when missing), through the connections' ``search_path``; a URL's own
``?options=-csearch_path%3Dname`` works too, for a schema that exists.

Runners sleep until the next due time; a transaction that makes work due sooner (a start, a
follow-up, an acknowledgement or cancellation, a provider's report that escalates at once)
sends one ``NOTIFY`` from the application (never a trigger: it would serialise commits), and
:meth:`PostgresStore.watch` (``LISTEN`` on a connection of its own) wakes them. ``?notify=off``
in the URL (or ``notify=False``) sends and hears none, for PgBouncer in transaction mode,
where a ``LISTEN`` would not last: runners then poll.

A transition writes what changed: the notification's columns and the changing part of its
record (``state``: status, times, attempts), never the body it was started with (recipient,
context, metadata); a read lays the state over the body. A group of changes goes as one
statement per table (rows as one JSON array, through ``json_to_recordset``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool
from pydantic_core import to_json

from outreach._models import Attention, Event, EventKind, Medium, Notification
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
from outreach.stores._codec import load_attention, load_event, merged
from outreach.stores._pacing import SWEEP_EVERY, Charge, PaceWalk
from outreach.stores._rows import (
    Encoded,
    Encoder,
    NamedReads,
    Params,
    PlanCache,
    Row,
    Rows,
    filtered_events,
    resolved_event,
    taken_event,
    unanswered_event,
)

_SQL = _queries.load("postgres")
_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_ENCODER = Encoder(lambda when: when, split=True)  # a transition writes `state`, not `body`

_Cursor = psycopg.AsyncCursor[Any]
_WAKING = frozenset(  # and any follow-up started
    {EventKind.ACKNOWLEDGED, EventKind.DELIVERED, EventKind.ENGAGED, EventKind.CANCELLED}
)


def _wakes(change: Change) -> bool:
    """Whether a change may make work due sooner for runners elsewhere: a follow-up, an
    acknowledgement or cancellation, or a provider's report that ends a wait at once (an
    undelivered text escalates now)."""
    if change.children or any(e.kind in _WAKING for e in change.events):
        return True
    n = change.notification
    due_now = n.due_at is not None and n.due_at <= n.updated_at
    return due_now and any(e.kind is EventKind.ATTEMPT_STATUS for e in change.events)


def notify_option(url: str) -> tuple[str, bool]:
    """``url`` without its ``notify=`` query option (libpq knows no such thing), and whether
    it leaves NOTIFY on (``notify=off``/``false``/``0``/``no`` turns it off)."""
    parts = urlsplit(url)
    if not parts.query:
        return url, True
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = [value for name, value in query if name == "notify"]
    if not given:
        return url, True
    value = given[-1].lower()
    if value not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ConfigurationError(f"store URL option notify={given[-1]!r}: use notify=on or off")
    rest = urlencode([(name, v) for name, v in query if name != "notify"])
    return urlunsplit(parts._replace(query=rest)), value in ("on", "true", "1", "yes")


_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([A-Za-z0-9_]+)")


def _schema_in_options(url: str) -> str | None:
    """The schema ``?options=-csearch_path%3Dname`` puts first on the search path, if any."""
    found = _SEARCH_PATH.search(str(conninfo_to_dict(url).get("options") or ""))
    return found.group(1) if found else None


_RANK_BITS = 24  # an event's cursor: its transaction id << 24, plus its rank in it
_EVENTS_LOCK = 0x6F757472  # with the events table's oid, the key of its writers' shared lock
_XID_BITS = 32


def horizon(next_xid: int, writers: Sequence[int]) -> int:
    """The oldest transaction id (64-bit) that may still log an event: the next to be handed
    out, or an older one holding the event writers' lock. ``writers`` are 32-bit ids, from
    the epoch of ``next_xid`` or, when larger than its low bits, the epoch before."""
    epoch, low = next_xid >> _XID_BITS, next_xid & ((1 << _XID_BITS) - 1)
    full = [((epoch if xid < low else epoch - 1) << _XID_BITS) | xid for xid in writers]
    return min([next_xid, *full])


def _charge_params(charge: Charge, clock: Params) -> Params:
    limit = charge.limit
    return {
        **clock,
        **_limit_params(limit),
        "after": charge.after,
        "tolerance": limit.tolerance,
    }


def _limit_params(limit: Limit) -> Params:
    return {"scope": limit.scope, "key": limit.key, "step": limit.step}


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC)


def migrations() -> list[tuple[int, str]]:
    """The numbered schema scripts shipped with the package, in order."""
    return _queries.migrations("postgres")


async def _run_many(
    cur: _Cursor, query: str, rows: Sequence[Params]
) -> list[list[tuple[Any, ...]]]:
    """Run ``query`` once per row, in order, in one pipeline; per row, what its run returned
    (when the statement returns anything)."""
    if not rows:
        return []
    returning = "RETURNING" in query
    await cur.executemany(query, rows, returning=returning)
    found: list[list[tuple[Any, ...]]] = []
    while returning:
        found.append(await cur.fetchall())
        if not cur.nextset():
            break
    return found


def _recordset(rows: Sequence[Params]) -> Params:
    """Rows of one statement's parameters as its one parameter, a JSON array of objects
    (for ``json_to_recordset``): times in ISO 8601, enumerations by value."""
    return {"rows": to_json(rows).decode()}


async def _update_all(cur: _Cursor, updates: Sequence[Params]) -> list[bool]:
    """Run each version-checked update; per update, whether it was written. Updates of
    distinct notifications (the usual group) go as one statement; a group writing one
    notification twice runs in order, each checked against the version the one before set."""
    if not updates:
        return []
    ids = [update["id"] for update in updates]
    if len(set(ids)) < len(ids):
        updated = await _run_many(cur, _SQL["update_notification"], updates)
        return [bool(rows) for rows in updated]
    await cur.execute(_SQL["update_notifications"], _recordset(updates))
    written = {row[0] for row in await cur.fetchall()}
    return [notification_id in written for notification_id in ids]


async def _lock_open_attentions(cur: _Cursor, changes: Sequence[Encoded]) -> set[str]:
    """Of the attention records ``changes`` add causes to, those still open, locked."""
    ids = sorted({u["id"] for change in changes for u in change.attention_updates})
    if not ids:
        return set()
    await cur.execute(_SQL["lock_open_attentions"], {"ids": ids})
    return {row[0] for row in await cur.fetchall()}


async def _upsert_attempts(cur: _Cursor, attempts: Sequence[Params]) -> None:
    """Write attempts' index rows in one statement (an attempt listed twice: its last row)."""
    latest = list({attempt["id"]: attempt for attempt in attempts}.values())
    if latest:
        await cur.execute(_SQL["upsert_attempts"], _recordset(latest))


async def _insert_events(cur: _Cursor, events: Sequence[Params]) -> None:
    """Log entries in one statement, in order."""
    if events:
        await cur.execute(_SQL["insert_events"], _recordset(events))


class PostgresStore(NamedReads):
    """A store in a PostgreSQL database, shared by every runner that points at it.

    ``url`` is a libpq URL or conninfo string (``postgresql://user@host:5432/db``); ``schema``
    puts the tables in that schema (created when missing); ``max_connections`` bounds the pool;
    :meth:`open` waits up to ``connect_timeout`` seconds for the server. ``notify=False`` (or
    ``?notify=off`` in the URL) is the poll-only mode, for PgBouncer in transaction mode.
    """

    encoder = _ENCODER

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        notify: bool = True,
    ) -> None:
        if schema is not None and not _SCHEMA.fullmatch(schema):
            raise ConfigurationError(
                f"PostgreSQL schema name {schema!r}: use letters, digits and underscores"
            )
        self._url, notify_in_url = notify_option(url)
        self.notify = notify and notify_in_url
        """Whether this store sends and hears wake-ups (False: poll-only mode)."""
        named = schema or _schema_in_options(self._url)  # either way, one channel per schema
        self._channel = "outreach" if named is None else f"outreach.{named}"
        self._schema = schema
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._plans = PlanCache()
        self._paced = 0  # sends paced since the last sweep of spent buckets
        self._events_key = 0  # the event writers' lock (set by open())

    def __repr__(self) -> str:
        where = conninfo_to_dict(self._url)
        host, db = where.get("host", "localhost"), where.get("dbname", "")
        return f"PostgresStore({host}/{db}{'' if self._schema is None else f', {self._schema}'})"

    # plumbing

    def _connection_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"autocommit": True}
        if self._schema is not None:
            given = conninfo_to_dict(self._url).get("options") or ""
            options["options"] = f"{given} -c search_path={self._schema}".strip()
        return options

    @asynccontextmanager
    async def _cursor(self, *, transaction: bool = False) -> AsyncIterator[_Cursor]:
        """A cursor on a pooled connection (in a transaction, if asked); psycopg's errors
        become :class:`StoreError`."""
        if self._pool is None:
            raise StoreError("the store is not open; use 'async with AsyncClient(...)'")
        try:
            async with self._pool.connection() as conn:
                if transaction:
                    async with conn.transaction(), conn.cursor() as cur:
                        yield cur
                else:
                    async with conn.cursor() as cur:
                        yield cur
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {self!r}: {exc}") from exc

    async def _with_plans(self, cur: _Cursor, rows: list[Row]) -> Rows:
        """``rows`` plus the stored bodies of the plans they use that are not parsed yet."""
        missing = self._plans.missing(rows)
        plans: dict[str, str] = {}
        if missing:
            await cur.execute(_SQL["get_plans"], {"ids": sorted(missing)})
            plans = dict(await cur.fetchall())
        return Rows(rows, plans)

    async def _read(self, query: str, **params: Any) -> list[Notification]:
        async with self._cursor() as cur:
            await cur.execute(_SQL[query], params)
            read = await self._with_plans(cur, await cur.fetchall())
        return self._plans.decode(read)

    async def _write(self, query: str, **params: Any) -> int:
        async with self._cursor() as cur:
            await cur.execute(_SQL[query], params)
            return cur.rowcount

    async def _tuples(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        async with self._cursor() as cur:
            await cur.execute(_SQL[query], params)
            return list(await cur.fetchall())

    # lifecycle

    async def open(self) -> None:
        await self._start(self._migrate)

    async def open_existing(self) -> None:
        """Connect only to a schema that is there and at the current version: nothing is
        created or migrated (``ConfigurationError`` otherwise). ``open()`` then does nothing."""
        await self._start(self._check_schema)

    async def _start(self, prepare: Callable[[], Awaitable[None]]) -> None:
        if self._pool is not None:
            return
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self._url,
            kwargs=self._connection_options(),
            min_size=1,
            max_size=self._max_connections,
            open=False,
            name="outreach",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(f"PostgreSQL store {self!r}: cannot connect: {exc}") from exc
        self._pool = pool
        try:
            await prepare()
        except BaseException:
            await self.close()
            raise

    async def _check_schema(self) -> None:
        async with self._cursor() as cur:
            await cur.execute(_SQL["has_schema_version"])
            [(found,)] = await cur.fetchall()
            current = None
            if found:
                await cur.execute(_SQL["schema_version"])
                [(current,)] = await cur.fetchall()
            newest = migrations()[-1][0]
            if current is None:
                raise ConfigurationError(
                    f"no outreach store in {self!r} (check the store URL; `outreach db upgrade`"
                    " creates and migrates it)"
                )
            _queries.refuse_newer(current, newest, repr(self))
            if current < newest:
                raise ConfigurationError(
                    f"the store {self!r} is at schema version {current} and this outreach"
                    f" needs {newest}: run `outreach db upgrade`"
                )
            await self._events_lock_key(cur)

    async def _migrate(self) -> None:
        async with self._cursor(transaction=True) as cur:
            await cur.execute(_SQL["lock_migrations"])
            if self._schema is not None:
                create = sql.SQL(_SQL["create_schema"]).format(schema=sql.Identifier(self._schema))
                await cur.execute(create)
            await cur.execute(_SQL["create_schema_version"])
            await cur.execute(_SQL["schema_version"])
            row = await cur.fetchone()
            current = (row[0] if row else None) or 0
            _queries.refuse_newer(current, migrations()[-1][0], repr(self))
            for version, script in migrations():
                if version > current:
                    await cur.execute(script.encode())  # several statements: no parameters
                    await cur.execute(_SQL["record_migration"], {"version": version})
            await self._events_lock_key(cur)

    async def _events_lock_key(self, cur: _Cursor) -> None:
        await cur.execute(_SQL["events_table"])
        [(table,)] = await cur.fetchall()
        self._events_key = (_EVENTS_LOCK << _XID_BITS) | table

    async def _lock_events(self, cur: _Cursor) -> None:
        """Join the event writers (see ``lock_events``): first thing in a transaction."""
        await cur.execute(_SQL["lock_events"], {"key": self._events_key})

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # notifications

    async def create(
        self, notifications: Sequence[Notification], events: Sequence[Event]
    ) -> list[Notification]:
        plans = self._plans.of(notifications)
        rows = [_ENCODER.insert(n, plans.fingerprints[id(n.plan)]) for n in notifications]
        taken: list[Notification | None] = []
        async with self._cursor(transaction=True) as cur:
            if events:
                await self._lock_events(cur)
            await _run_many(cur, _SQL["insert_plan"], plans.rows())
            inserted = await _run_many(cur, _SQL["insert_notification"], rows)
            created = {row[0] for rows_of_one in inserted for row in rows_of_one}
            for new in notifications:
                old = None
                if new.id not in created:
                    old = await self._holder(cur, new)
                    if not new.same_request(old):
                        raise IdempotencyConflict(  # rolls the whole batch back
                            f"key {new.key!r} is already used by notification {old.id} "
                            "with a different recipient or plan"
                        )
                taken.append(old)
            fresh = [e for e in _ENCODER.events(events) if e["notification_id"] in created]
            await _run_many(cur, _SQL["insert_event"], fresh)
            if created:
                await self._notify(cur)
        self._plans.committed(plans)
        return [new if old is None else old for new, old in zip(notifications, taken, strict=True)]

    async def _holder(self, cur: _Cursor, new: Notification) -> Notification:
        """The stored notification holding a new one's key (or id)."""
        await cur.execute(_SQL["get_by_key_or_id"], {"key": new.key, "id": new.id})
        found = await cur.fetchone()
        if found is None:
            raise StoreError(f"notification {new.id} was neither inserted nor found")
        # Its plan may be uncommitted (inserted just now), so it is parsed into a copy of the
        # cache, not the cache: a rollback may follow.
        [old] = self._plans.decode(await self._with_plans(cur, [found]), dict(self._plans.plans))
        return old

    async def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> Claimed:
        claim = {"owner": owner, "lease_until": now + lease, "now": now, "limit": limit}
        async with self._cursor() as cur:
            await cur.execute(_SQL["claim_due"], claim)
            rows = await cur.fetchall()
            read = await self._with_plans(cur, [row[2:] for row in rows])
        return Claimed(self._plans.decode(read), {row[0]: row[1] for row in rows})

    async def renew(self, leases: Mapping[str, int], *, owner: str, until: datetime) -> set[str]:
        if not leases:
            return set()
        renewal = {
            "owner": owner,
            "lease_until": until,
            "ids": list(leases),
            "epochs": list(leases.values()),
        }
        async with self._cursor() as cur:
            await cur.execute(_SQL["renew"], renewal)
            return {row[0] for row in await cur.fetchall()}

    async def release(self, notification_ids: Sequence[str], *, owner: str) -> int:
        return await self._write("release", ids=list(notification_ids), owner=owner)

    async def save(self, changes: Sequence[Change]) -> list[Notification | None]:
        plans = self._plans.of([child for change in changes for child in change.children])
        encoded = [_ENCODER.change(change, plans.fingerprints) for change in changes]
        # Not pipelined: a pipelined group let two concurrent changes of one notification's
        # attention record both land (tests/test_attention_one_per_notification.py).
        async with self._cursor(transaction=True) as cur:
            if any(e.events for e in encoded):
                await self._lock_events(cur)
            await _run_many(cur, _SQL["insert_plan"], plans.rows())
            # As SQLite does: two changes of one notification in a group are checked against
            # each other's versions. One statement per table for the whole group.
            # A cause added to an attention record resolved meanwhile fails its change.
            still_open = await _lock_open_attentions(cur, encoded)
            addable = [all(u["id"] in still_open for u in c.attention_updates) for c in encoded]
            updates = [c.update for c, ok in zip(encoded, addable, strict=True) if ok]
            written = iter(await _update_all(cur, updates))
            saved = [ok and next(written) for ok in addable]
            kept = [change for change, ok in zip(encoded, saved, strict=True) if ok]
            # A follow-up whose key is taken was started before: it is not started twice.
            await _run_many(cur, _SQL["insert_notification"], [r for c in kept for r in c.children])
            await _upsert_attempts(cur, [r for c in kept for r in c.attempts])
            await _insert_events(cur, [r for c in kept for r in c.events])
            await _run_many(cur, _SQL["insert_suppression"], [r for c in kept for r in c.opt_outs])
            await _run_many(cur, _SQL["insert_attention"], [r for c in kept for r in c.attentions])
            await _run_many(
                cur, _SQL["amend_attention"], [r for c in kept for r in c.attention_updates]
            )
            if any(_wakes(change) for change, ok in zip(changes, saved, strict=True) if ok):
                await self._notify(cur)
        self._plans.committed(plans)
        return [e.stored if ok else None for e, ok in zip(encoded, saved, strict=True)]

    async def next_due(self) -> datetime | None:
        async with self._cursor() as cur:
            await cur.execute(_SQL["next_due"])
            row = await cur.fetchone()
        value: datetime | None = row[0] if row else None
        return None if value is None else value.astimezone(UTC)

    async def remember(self, key: str, now: datetime) -> bool:
        return bool(await self._write("remember", key=key, received_at=now))

    async def forget(self, key: str) -> None:
        await self._write("forget", key=key)

    # wake-ups and operations

    async def _notify(self, cur: _Cursor) -> None:
        """Wake listening runners when this transaction commits (once per transaction)."""
        if self.notify:
            await cur.execute(_SQL["notify"], {"channel": self._channel})

    async def watch(self, heard: Callable[[], None]) -> None:
        """``LISTEN`` on a connection of its own and call ``heard()`` on every notification
        (and once when listening starts: what was written before is not heard). In poll-only
        mode, return at once. A lost connection raises :class:`StoreError`."""
        if not self.notify:
            return
        try:
            async with await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout))
            ) as conn:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                heard()
                async for _ in conn.notifies():
                    heard()
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {self!r}: stopped listening: {exc}") from exc

    async def schema_version(self) -> int:
        async with self._cursor() as cur:
            await cur.execute(_SQL["schema_version"])
            row = await cur.fetchone()
        return int((row[0] if row else None) or 0)

    async def prune(
        self,
        finished_before: datetime,
        *,
        receipts_before: datetime | None = None,
        batch: int = 500,
    ) -> Pruned:
        pruned = await self._prune_notifications(finished_before, batch)
        before = _prune.receipts_cutoff(finished_before, receipts_before)
        receipts = 0
        while found := await self._write("prune_receipts", before=before, limit=batch):
            receipts += found
        return Pruned(pruned, receipts)

    async def _prune_notifications(self, finished_before: datetime, batch: int) -> int:
        pruned = 0
        while True:
            async with self._cursor(transaction=True) as cur:
                query = {"before": finished_before, "statuses": list(_prune.FINISHED)}
                await cur.execute(_SQL["prunable"], {**query, "limit": batch})
                rows = await cur.fetchall()
                keys = [{"id": nid, "version": version} for nid, version, _, _ in rows]
                bodies = [_prune.anonymized(merged(body, state)) for _, _, body, state in rows]
                await _run_many(
                    cur,
                    _SQL["prune_notification"],
                    [{**key, "body": body} for key, body in zip(keys, bodies, strict=True)],
                )
                await _run_many(cur, _SQL["prune_attempts"], keys)
                await _run_many(cur, _SQL["prune_replies"], keys)
            if not rows:
                return pruned
            pruned += len(rows)

    async def sweep(self, now: datetime, *, lapsed_before: datetime, limit: int) -> list[Stuck]:
        times = {"now": now, "before": lapsed_before, "limit": limit}
        async with self._cursor(transaction=True) as cur:
            await self._lock_events(cur)
            found: list[tuple[str, str]] = []
            for query, reason in _stuck.QUERIES:
                await cur.execute(_SQL[query], times)
                found += [(row[0], reason) for row in await cur.fetchall()]
            stuck = _stuck.distinct(found)[:limit]
            await _run_many(cur, _SQL["insert_event"], _ENCODER.events(_stuck.events(stuck, now)))
        return stuck

    # event log and suppressions

    async def events(
        self, since: int = 0, limit: int = 1000, where: EventFilter | None = None
    ) -> list[Event]:
        query, params = "events", {"since": since, "limit": limit}
        if where is not None:
            kinds = None if where.kinds is None else sorted(where.kinds)
            query, filters = filtered_events(where, kinds)
            params |= filters
        async with self._cursor() as cur:
            # Two statements, so the entries are read in a snapshot taken after the horizon.
            await cur.execute(_SQL["events_horizon"], {"key": self._events_key})
            [(next_xid, writers)] = await cur.fetchall()
            feed = {
                **params,
                "since_txid": max(since, 0) >> _RANK_BITS,
                "horizon": horizon(int(next_xid), writers),
            }
            await cur.execute(_SQL[query], feed)
            rows = await cur.fetchall()
        return [load_event(seq, at.astimezone(UTC), *rest) for seq, at, *rest in rows]

    # pacing

    async def pace(
        self, sends: Sequence[Sequence[Limit]], *, now: datetime | None, horizon: timedelta
    ) -> list[timedelta]:
        if not any(sends):
            return [timedelta(0)] * len(sends)
        walk = PaceWalk(sends, horizon)
        clock: Params = {"now": now, "horizon": horizon}
        # One transaction: now() is the same instant for every statement in it.
        async with self._cursor(transaction=True) as cur:
            while charges := walk.next_round():
                params = [_charge_params(charge, clock) for charge in charges]
                answers = await _run_many(cur, _SQL["pace"], params)
                walk.answer(charges, [rows[0][0] for rows in answers])
            await _run_many(cur, _SQL["charge"], [_limit_params(r) for r in walk.refunds])
            self._paced += len(sends)
            if self._paced >= SWEEP_EVERY:
                self._paced = 0
                await cur.execute(_SQL["sweep_pacing"], {"now": now})
        return walk.delays

    async def charge(self, limits: Sequence[Limit]) -> None:
        if limits:
            async with self._cursor(transaction=True) as cur:
                await _run_many(cur, _SQL["charge"], [_limit_params(limit) for limit in limits])

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
        async with self._cursor() as cur:
            await cur.execute(_SQL["attentions"], params)
            rows = await cur.fetchall()
        return [load_attention(row, _utc) for row in rows]

    async def paged_out(self, *, limit: int) -> list[str]:
        async with self._cursor() as cur:
            await cur.execute(_SQL["paged_out"], {"limit": limit})
            rows = await cur.fetchall()
        return [row[0] for row in rows]

    async def resolve_attention(
        self, attention_id: str, *, by: str, note: str | None, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        closing = {"resolved_at": now, "resolved_by": by, "note": note}
        return await self._change_attention(
            "resolve_attention", attention_id, closing, resolved_event
        )

    async def take_attention(
        self, attention_id: str, *, by: str, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        taking = {"taken_by": by, "taken_at": now}
        return await self._change_attention("take_attention", attention_id, taking, taken_event)

    async def unanswered_attention(
        self, attention_id: str, *, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        marking = {"unanswered_at": now}
        return await self._change_attention(
            "unanswered_attention", attention_id, marking, unanswered_event
        )

    async def _change_attention(
        self,
        query: str,
        attention_id: str,
        params: dict[str, Any],
        logged: Callable[[Attention], Event],
    ) -> tuple[Attention, Event | None] | None:
        """Run one conditional update of an attention record and, if it changed the row, log
        it, in one transaction."""
        async with self._cursor(transaction=True) as cur:
            await self._lock_events(cur)
            await cur.execute(_SQL[query], params | {"id": attention_id})
            changed = await cur.fetchone() is not None
            await cur.execute(_SQL["get_attention"], {"id": attention_id})
            row = await cur.fetchone()
            if row is None:
                return None
            attention = load_attention(row, _utc)
            if not changed:
                return attention, None
            event = logged(attention)
            await cur.execute(_SQL["insert_event_returning_seq"], _ENCODER.events([event])[0])
            inserted = await cur.fetchone()
        assert inserted is not None
        return attention, event.model_copy(update={"seq": inserted[0]})

    async def opted_out(self, addresses: Sequence[tuple[Medium, str]]) -> set[tuple[Medium, str]]:
        wanted = set(addresses)
        async with self._cursor() as cur:
            await cur.execute(
                _SQL["opted_out"], {"addresses": sorted({address for _, address in wanted})}
            )
            rows = await cur.fetchall()
        return {(Medium(m), a) for m, a in rows if (Medium(m), a) in wanted}

    async def suppress(self, medium: Medium, address: str, reason: str, now: datetime) -> None:
        await self._write("suppress", medium=medium, address=address, reason=reason, created_at=now)

    async def unsuppress(self, medium: Medium, address: str) -> None:
        await self._write("unsuppress", medium=medium, address=address)
