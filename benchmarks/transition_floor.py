"""CPU per step transition of the engine against a bare-SQL floor, on SQLite and PostgreSQL, in
one run (issue #14, item 7: the target is a ratio, not an absolute figure).

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/transition_floor.py                # N = 5,000, both stores
    .venv/bin/python benchmarks/transition_floor.py --store sqlite -n 2000
    .venv/bin/python benchmarks/transition_floor.py --breakdown    # where the engine's CPU goes

Per store, in a scratch file or schema (dropped afterwards):

1. Engine: ``start_many`` N notifications (not timed) of a 3-step plan (SMS, email, call),
   ``InMemoryChannel`` subclasses that count, a fake clock; then ``run_due`` at t0, +15m,
   +30m and +1h: 3N sends and N exhaustions, so 4N step transitions. Checked: N exhausted,
   3N sends.
2. Floor, on the same store's tables and rows (reset, untimed): 4 passes; each pass claims
   batches of 500 due rows with one ``UPDATE ... RETURNING`` (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL) that sets the lease, bumps the fencing counter and returns the rows' bodies,
   then per row one version-checked, fenced ``UPDATE`` of the columns a transition changes
   (status, due time, version, lease released; not the body: the issue asks that a transition
   write what changed) and one event ``INSERT``, one transaction per batch: 4N transitions of
   the bare SQL one needs, with no engine. Statements go as ``executemany`` (psycopg
   pipelines them).

The figure is this process's CPU (``time.process_time``: all threads, so the SQLite store's
thread is in it; the PostgreSQL server's own CPU is in neither side) per transition, engine
over floor. Target: <= 12x on both stores. ``--breakdown`` profiles the engine phase with
cProfile on thread CPU time (the event-loop thread and the SQLite store's thread) and
splits its self time into runner/asyncio, decide, render+signing, encoding, SQL (driver and
store code) and the rest of outreach's own modules; a built-in or standard-library function
counts for the category of whoever called it. Timings under ``--breakdown`` are inflated,
so its ratio is not the figure.

Needs the PostgreSQL server of the tests for that leg (``OUTREACH_TEST_POSTGRES``, default
postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine_sqlite import (
    CONTEXT,
    PHASES,
    START,
    bench_client,
    build_requests,
    counting_channels,
    make_plan,
)

from outreach.stores._codec import to_micros
from outreach.testing import FakeClock

URL = os.environ.get("OUTREACH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 500
TARGET = 12.0
FLOOR_PASSES = 4
EVENT_DATA = '{"pass":0,"step":0}'


@dataclass
class Leg:
    """One side's figures: transitions, process CPU and wall seconds."""

    transitions: int
    cpu: float
    wall: float

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.transitions * 1e6

    @property
    def wall_us(self) -> float:
        return self.wall / self.transitions * 1e6


@contextmanager
def measured() -> Iterator[list[float]]:
    """Yields a list that holds [cpu, wall] seconds once the block ends."""
    out: list[float] = []
    cpu, wall = time.process_time(), time.perf_counter()
    yield out
    out += [time.process_time() - cpu, time.perf_counter() - wall]


# --- the engine ---------------------------------------------------------------------------


async def in_store_thread(ox: Any, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the SQLite store's own thread (cProfile sees one thread at a time)."""
    return await asyncio.get_running_loop().run_in_executor(ox.store._executor, fn)


async def run_engine(store: Any, n: int, profilers: list[cProfile.Profile] | None) -> Leg:
    requests, _ = build_requests(n)
    clock = FakeClock(START)
    channels = counting_channels()
    async with bench_client(store, clock, channels) as ox:
        plan = make_plan()
        for lo in range(0, n, 1000):
            await ox.start_many(plan, requests[lo : lo + 1000], context=CONTEXT)
        threaded = getattr(ox.store, "_executor", None) is not None
        if profilers is not None:
            profilers.append(cProfile.Profile(time.thread_time))  # CPU, not idle waits
            if threaded:
                profilers.append(cProfile.Profile(time.thread_time))
                await in_store_thread(ox, profilers[1].enable)
            profilers[0].enable()
        with measured() as spent:
            for _, advance in PHASES:
                if advance is not None:
                    clock.advance(advance)
                await ox.run_due()
        if profilers is not None:
            profilers[0].disable()
            if threaded:
                await in_store_thread(ox, profilers[1].disable)
        statuses = Counter(n.status for n in await ox.store.query(limit=n + 1))
    sends = sum(channel.sent for channel in channels.values())
    if statuses != {"exhausted": n} or sends != 3 * n:
        sys.exit(f"engine run went wrong: {dict(statuses)}, {sends} sends for {n}")
    return Leg(4 * n, *spent)


# --- the floor ----------------------------------------------------------------------------


def floor_sqlite(path: Path, n: int) -> Leg:
    """The floor on the SQLite store's file: its tables, its rows, its pragmas."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    t0 = datetime.fromisoformat(START)
    db.execute(
        "UPDATE notifications SET status = 'active', due_at = ?, lease_owner = NULL,"
        " lease_until = NULL",
        (to_micros(t0),),
    )
    claim = (
        "UPDATE notifications SET lease_owner = ?, lease_until = ?, lease_epoch = lease_epoch + 1"
        " WHERE id IN (SELECT id FROM notifications WHERE due_at <= ?"
        " AND (lease_until IS NULL OR lease_until <= ?) ORDER BY due_at LIMIT ?)"
        " RETURNING id, lease_epoch, version, body"
    )
    update = (
        "UPDATE notifications SET status = ?, due_at = ?, version = version + 1,"
        " lease_owner = NULL, lease_until = NULL WHERE id = ? AND version = ? AND lease_epoch = ?"
    )
    insert = (
        "INSERT INTO events (at, notification_id, kind, attempt_id, data) VALUES (?, ?, ?, ?, ?)"
    )
    done = 0
    with measured() as spent:
        for step in range(FLOOR_PASSES):
            now = to_micros(t0 + timedelta(hours=step))
            last = step == FLOOR_PASSES - 1
            status, due = ("exhausted", None) if last else ("active", now + 3_600_000_000)
            while True:
                db.execute("BEGIN IMMEDIATE")
                rows = db.execute(claim, ("floor", now + 300_000_000, now, now, BATCH)).fetchall()
                if not rows:
                    db.execute("COMMIT")
                    break
                changed = db.executemany(
                    update, [(status, due, nid, v, epoch) for nid, epoch, v, _ in rows]
                ).rowcount
                assert changed == len(rows), (changed, len(rows))
                db.executemany(
                    insert, [(now, nid, "attempt", None, EVENT_DATA) for nid, _, _, _ in rows]
                )
                db.execute("COMMIT")
                done += len(rows)
    db.close()
    assert done == FLOOR_PASSES * n, done
    return Leg(done, *spent)


def floor_postgres(schema: str, n: int) -> Leg:
    """The floor on the PostgreSQL store's schema: its tables and rows, the same driver."""
    import psycopg

    t0 = datetime.fromisoformat(START)
    claim = (
        "WITH due AS (SELECT id FROM notifications WHERE due_at <= %(now)s"
        " AND (lease_until IS NULL OR lease_until <= %(now)s) ORDER BY due_at LIMIT %(limit)s"
        " FOR UPDATE SKIP LOCKED)"
        " UPDATE notifications AS n SET lease_owner = 'floor', lease_until = %(until)s,"
        " lease_epoch = n.lease_epoch + 1 FROM due WHERE n.id = due.id"
        " RETURNING n.id, n.lease_epoch, n.version, n.body"
    )
    update = (
        "UPDATE notifications SET status = %s, due_at = %s, version = version + 1,"
        " lease_owner = NULL, lease_until = NULL"
        " WHERE id = %s AND version = %s AND lease_epoch = %s"
    )
    insert = (
        "INSERT INTO events (at, notification_id, kind, attempt_id, data)"
        " VALUES (%s, %s, %s, %s, %s)"
    )
    done = 0
    with psycopg.connect(URL, options=f"-csearch_path={schema}") as db:
        db.execute(
            "UPDATE notifications SET status = 'active', due_at = %s, lease_owner = NULL,"
            " lease_until = NULL",
            (t0,),
        )
        db.commit()
        with measured() as spent:
            for step in range(FLOOR_PASSES):
                now = t0 + timedelta(hours=step)
                last = step == FLOOR_PASSES - 1
                status, due = ("exhausted", None) if last else ("active", now + timedelta(hours=1))
                while True:
                    with db.transaction(), db.cursor() as cursor:
                        params = {"now": now, "limit": BATCH, "until": now + timedelta(minutes=5)}
                        rows = cursor.execute(claim, params).fetchall()
                        if not rows:
                            break
                        cursor.executemany(
                            update,
                            [(status, due, nid, v, epoch) for nid, epoch, v, _ in rows],
                        )
                        assert cursor.rowcount == len(rows), (cursor.rowcount, len(rows))
                        cursor.executemany(
                            insert,
                            [(now, nid, "attempt", None, EVENT_DATA) for nid, _, _, _ in rows],
                        )
                    done += len(rows)
    assert done == FLOOR_PASSES * n, done
    return Leg(done, *spent)


# --- the breakdown ------------------------------------------------------------------------

CATEGORIES: Sequence[tuple[str, Sequence[str]]] = (
    ("decide", ("outreach/_engine.py",)),
    (
        "render+signing",
        (
            "outreach/_messages.py",
            "outreach/_templates.py",
            "outreach/_tokens.py",
            "outreach/_urls.py",
            "/jinja2/",
            "/markupsafe/",
            "hmac",
            "_hashlib",
            "base64",
        ),
    ),
    (
        "encoding",
        (
            "outreach/stores/_codec.py",
            "outreach/stores/_rows.py",
            "outreach/_models.py",
            "/pydantic",
            "pydantic_core",
            "/json/",
            "_json",
        ),
    ),
    ("SQL", ("outreach/stores/", "/psycopg", "sqlite3")),
    (
        "runner/asyncio",
        (
            "outreach/_runner.py",
            "/asyncio/",
            "/concurrent/",
            "threading.py",
            "selectors.py",
            "queue.py",
            "select.epoll",
            "_socket",
            "_contextvars",
            "outreach/_clock.py",
            "outreach/_ratelimit.py",
            "outreach/_senders.py",
        ),
    ),
)


Key = tuple[str, int, str]


def own_category(key: Key) -> str | None:
    """The category a function belongs to by its own file or name (None: by its callers)."""
    where = f"{key[0]} {key[2]}"
    for name, marks in CATEGORIES:
        if any(mark in where for mark in marks):
            return name
    if "/outreach/" in key[0]:
        return "other outreach"
    return None


def shares(key: Key, raw: dict[Key, tuple[Any, ...]], seen: frozenset[Key]) -> Counter[str]:
    """How ``key``'s self time splits among categories: its own, or else its callers' (up the
    call graph, weighted by the time spent under each caller), so a built-in or a standard
    library function counts for whoever calls it."""
    mine = own_category(key)
    if mine is not None:
        return Counter({mine: 1.0})
    callers: dict[Key, tuple[Any, ...]] = raw[key][4]
    split: Counter[str] = Counter()
    total = sum(entry[2] for entry in callers.values())
    if not callers or total <= 0 or len(seen) > 8:
        return Counter({"other": 1.0})
    for caller, entry in callers.items():
        part = entry[2] / total
        upper = shares(caller, raw, seen | {key}) if caller not in seen else Counter(other=1.0)
        for name, fraction in upper.items():
            split[name] += part * fraction
    return split


def breakdown(profilers: list[cProfile.Profile]) -> list[str]:
    stats = pstats.Stats(profilers[0])
    for more in profilers[1:]:
        stats.add(more)
    raw: dict[Key, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    selves: Counter[str] = Counter()
    outreach_files: Counter[str] = Counter()
    for key, entry in raw.items():
        for name, fraction in shares(key, raw, frozenset()).items():
            selves[name] += entry[2] * fraction
        if own_category(key) == "other outreach":
            outreach_files[Path(key[0]).name] += entry[2]
    total = sum(selves.values()) or 1.0
    lines = [f"  {name:<15} {share / total:6.1%}" for name, share in selves.most_common()]
    top = ", ".join(f"{f} {t / total:.1%}" for f, t in outreach_files.most_common(4))
    lines.append(f"  (other outreach, own time: {top})")
    return lines


# --- the run ------------------------------------------------------------------------------


async def sqlite_leg(n: int, profile: bool) -> tuple[Leg, Leg, list[str]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "floor.db"
        profilers: list[cProfile.Profile] | None = [] if profile else None
        engine = await run_engine(f"sqlite:///{path}", n, profilers)
        floor = floor_sqlite(path, n)
    return engine, floor, breakdown(profilers) if profilers else []


async def postgres_leg(n: int, profile: bool) -> tuple[Leg, Leg, list[str]]:
    import psycopg

    from outreach.stores.postgres import PostgresStore

    schema = f"bench_floor_{uuid.uuid4().hex[:12]}"
    try:
        profilers: list[cProfile.Profile] | None = [] if profile else None
        engine = await run_engine(PostgresStore(URL, schema=schema), n, profilers)
        floor = floor_postgres(schema, n)
    finally:
        with psycopg.connect(URL, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return engine, floor, breakdown(profilers) if profilers else []


async def main(n: int, stores: Sequence[str], profile: bool) -> None:
    legs = {"sqlite": sqlite_leg, "postgres": postgres_leg}
    print(f"N = {n:,}, 3-step plan, 4N = {4 * n:,} transitions a side; target <= {TARGET:g}x")
    for name in stores:
        engine, floor, split = await legs[name](n, profile)
        ratio = engine.cpu_us / floor.cpu_us
        print(
            f"{name:<9} engine {engine.cpu_us:7.1f} us CPU ({engine.wall_us:7.1f} wall)"
            f"  floor {floor.cpu_us:6.1f} us CPU ({floor.wall_us:6.1f} wall)"
            f"  ratio {ratio:5.1f}x CPU, {engine.wall_us / floor.wall_us:5.1f}x wall"
            + ("  (profiled: inflated)" if profile else "")
        )
        if split:
            print(f"  engine's self time under cProfile, {name}:")
            print("\n".join(split))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5_000, help="notifications (default 5,000)")
    parser.add_argument(
        "--store", choices=("sqlite", "postgres", "both"), default="both", help="which store(s)"
    )
    parser.add_argument("--breakdown", action="store_true", help="cProfile split of the engine")
    args = parser.parse_args()
    chosen = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    logging.getLogger("outreach").setLevel(logging.ERROR)  # engine_sqlite's short bench key
    asyncio.run(main(args.n, chosen, args.breakdown))
