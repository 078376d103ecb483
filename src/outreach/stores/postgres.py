"""The scale-out store: many runners, in many processes, sharing one PostgreSQL database.

Runners claim due work with one statement (``FOR UPDATE SKIP LOCKED`` in a CTE), so claimers
never wait for each other and never get the same row; every write is version-checked as in
SQLite, and a group of changes is one transaction whose statements go out as one pipeline.
Records use the same JSON encoding as the SQLite store (``_codec``, ``_rows``); times are
``timestamptz`` columns.

The statements are named blocks of ``sql/postgres/queries.sql``; the numbered files beside it
are the schema's migrations, applied by :meth:`PostgresStore.open` under an advisory lock so
that processes starting together do not race. ``schema=`` keeps the tables in a schema of their
own (created when missing), through the connections' ``search_path``; a URL's own
``?options=-csearch_path%3Dname`` works too, for a schema that exists.

Writing only the columns a change touched (and not the whole body) is a later optimisation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from outreach._models import Event, Medium, Notification
from outreach.exceptions import ConfigurationError, IdempotencyConflict, StoreError
from outreach.stores import Change, _queries
from outreach.stores._codec import load_event
from outreach.stores._rows import Encoder, NamedReads, Params, PlanCache, Rows

_SQL = _queries.load("postgres")
_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_ENCODER = Encoder(lambda when: when)

_Cursor = psycopg.AsyncCursor[Any]


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


class PostgresStore(NamedReads):
    """A store in a PostgreSQL database, shared by every runner that points at it.

    ``url`` is a libpq URL or conninfo string (``postgresql://user@host:5432/db``); ``schema``
    puts the tables in that schema (created when missing); ``max_connections`` bounds the pool;
    :meth:`open` waits up to ``connect_timeout`` seconds for the server.
    """

    encoder = _ENCODER

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        if schema is not None and not _SCHEMA.fullmatch(schema):
            raise ConfigurationError(
                f"PostgreSQL schema name {schema!r}: use letters, digits and underscores"
            )
        self._url = url
        self._schema = schema
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._plans = PlanCache()

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

    async def _with_plans(self, cur: _Cursor, rows: list[tuple[str, str]]) -> Rows:
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
            await self._migrate()
        except BaseException:
            await self.close()
            raise

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
            for version, script in migrations():
                if version > current:
                    await cur.execute(script.encode())  # several statements: no parameters
                    await cur.execute(_SQL["record_migration"], {"version": version})

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
    ) -> list[Notification]:
        return await self._read(
            "claim_due", owner=owner, lease_until=now + lease, now=now, limit=limit
        )

    async def release(self, notification_ids: Sequence[str], *, owner: str) -> int:
        return await self._write("release", ids=list(notification_ids), owner=owner)

    async def save(self, changes: Sequence[Change]) -> list[Notification | None]:
        plans = self._plans.of([child for change in changes for child in change.children])
        encoded = [_ENCODER.change(change, plans.fingerprints) for change in changes]
        async with self._cursor(transaction=True) as cur:
            await _run_many(cur, _SQL["insert_plan"], plans.rows())
            # In order, as SQLite does: two changes of one notification in a group are checked
            # against each other's versions. One statement per table for the whole group.
            updated = await _run_many(cur, _SQL["update_notification"], [c.update for c in encoded])
            saved = [bool(rows) for rows in updated]
            kept = [change for change, ok in zip(encoded, saved, strict=True) if ok]
            # A follow-up whose key is taken was started before: it is not started twice.
            await _run_many(cur, _SQL["insert_notification"], [r for c in kept for r in c.children])
            await _run_many(cur, _SQL["upsert_attempt"], [r for c in kept for r in c.attempts])
            await _run_many(cur, _SQL["insert_event"], [r for c in kept for r in c.events])
            await _run_many(cur, _SQL["insert_suppression"], [r for c in kept for r in c.opt_outs])
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

    # event log and suppressions

    async def events(self, since: int = 0, limit: int = 1000) -> list[Event]:
        async with self._cursor() as cur:
            await cur.execute(_SQL["events"], {"since": since, "limit": limit})
            rows = await cur.fetchall()
        return [load_event(seq, at.astimezone(UTC), *rest) for seq, at, *rest in rows]

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
