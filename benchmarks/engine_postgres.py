"""CPU per step transition on PostgreSQL (or SQLite), engine_sqlite.py's workload.

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/engine_postgres.py             # N = 5,000, PostgreSQL
    .venv/bin/python benchmarks/engine_postgres.py --sqlite    # the same on a SQLite file

N notifications of the 3-step plan on counting ``InMemoryChannel``s and a fake clock, then
``run_due`` at t0, +15m, +30m and +1h: 4N step transitions. Reported per transition: this
process's CPU (engine, runner, store client; not the database server's), best of
``--rounds`` runs, each on a schema (or file) of its own, dropped afterwards. The server is
``OUTREACH_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
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

from outreach import StartRequest
from outreach.testing import FakeClock

URL = os.environ.get("OUTREACH_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def one_round(requests: list[StartRequest], sqlite: bool) -> tuple[float, float]:
    """CPU microseconds per transition and wall seconds of phase 2, on a fresh store."""
    import psycopg

    from outreach.stores.postgres import PostgresStore

    n = len(requests)
    clock = FakeClock(START)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as folder:
        store: Any = f"sqlite:///{folder}/bench.db" if sqlite else PostgresStore(URL, schema=schema)
        try:
            async with bench_client(store, clock, counting_channels()) as ox:
                await ox.start_many(make_plan(), requests, context=CONTEXT)
                cpu, wall = time.process_time(), time.perf_counter()
                for _, advance in PHASES:
                    if advance:
                        clock.advance(advance)
                    await ox.run_due()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            if not sqlite:
                with psycopg.connect(URL, autocommit=True) as db:
                    db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return cpu / (4 * n) * 1e6, wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5_000, help="notifications (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    args = parser.parse_args()
    requests, _ = build_requests(args.n)
    rounds = [await one_round(requests, args.sqlite) for _ in range(args.rounds)]
    store = "SQLite" if args.sqlite else "PostgreSQL"
    cpus = " ".join(f"{cpu:.0f}" for cpu, _ in rounds)
    walls = " ".join(f"{wall:.1f}" for _, wall in rounds)
    best = min(cpu for cpu, _ in rounds)
    print(f"{store}, N = {args.n:,}: CPU us per transition {cpus} (best {best:.0f})")
    print(f"  phase 2 wall s {walls}")


if __name__ == "__main__":
    asyncio.run(main())
