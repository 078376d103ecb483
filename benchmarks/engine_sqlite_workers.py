"""Engine + SQLite store driven by several worker processes sharing one file.

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/engine_sqlite_workers.py -n 100000 --workers 2

The workload is ``engine_sqlite.py``'s (a 3-step plan, counting in-memory channels, a fake
clock; a step transition is one of 4N committed engine changes), run twice in one sitting so
the two figures can be read side by side on a noisy machine:

1. with one worker process, then
2. with ``--workers`` worker processes,

each on a fresh file. This process builds the recipients once and starts every notification
(``start_many``); phase 2 runs in the workers, each an ``AsyncClient`` of its own (its own
lease owner, a ``FakeClock`` at the same instant, its own channels) on the same SQLite file.
This process tells them to advance the clock and ``run_due``, and times each phase until the
last worker is done. Leases keep the workers off each other's notifications; the verification
(every notification ``exhausted``, exactly 3N sends across workers) checks that none was
driven twice. (At a small N one worker may claim everything before the other asks.)

Pacing (channel rates, per-recipient caps) is kept per process, so with K workers a channel
is paced at K times its configured rate: these channels have no limits, so it does not show
here, but a deployment with several workers must divide its rates by K.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

from engine_sqlite import (
    CONTEXT,
    PHASES,
    START,
    TARGET_TRANSITIONS,
    bench_client,
    build_requests,
    counting_channels,
    make_plan,
    peak_rss_mb,
    progress,
    source_revision,
    verify,
)

from outreach import StartRequest
from outreach.testing import FakeClock

STOP = "stop"


# --- a worker process -------------------------------------------------------------------


def worker(db_path: Path, orders: Connection) -> None:
    """Wait for an order (a clock advance, or None for none), run_due, answer; until STOP."""
    asyncio.run(serve(db_path, orders))


async def serve(db_path: Path, orders: Connection) -> None:
    clock = FakeClock(START)
    mine = counting_channels()
    async with bench_client(f"sqlite:///{db_path}", clock, mine) as ox:
        orders.send("ready")
        while (order := orders.recv()) != STOP:
            if order is not None:
                clock.advance(order)
            cpu = time.process_time()
            claimed = await ox.run_due()
            orders.send((claimed, time.process_time() - cpu))
    orders.send(({name: c.sent for name, c in mine.items()}, peak_rss_mb()))


# --- one run ----------------------------------------------------------------------------


async def start_all(db_path: Path, requests: Sequence[StartRequest], chunk: int) -> float:
    """Start every notification from this process; return the wall time it took."""
    plan = make_plan()
    async with bench_client(f"sqlite:///{db_path}", FakeClock(START), counting_channels()) as ox:
        began = time.perf_counter()
        for lo in range(0, len(requests), chunk):
            await ox.start_many(plan, requests[lo : lo + chunk], context=CONTEXT)
        return time.perf_counter() - began


@contextmanager
def spawned(db_path: Path, count: int) -> Iterator[list[Connection]]:
    """``count`` worker processes on ``db_path``, ready for orders; stopped on the way out."""
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    pipes, processes = [], []
    try:
        for _ in range(count):
            mine, theirs = spawn.Pipe()
            process = spawn.Process(target=worker, args=(db_path, theirs), daemon=True)
            process.start()
            theirs.close()  # so a worker that dies makes recv() fail instead of hang
            pipes.append(mine)
            processes.append(process)
        for pipe in pipes:
            pipe.recv()  # ready
        yield pipes
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()


def run(
    db_path: Path, requests: Sequence[StartRequest], workers: int, chunk: int
) -> tuple[bool, list[str]]:
    """Start, drive with ``workers`` processes, verify; return whether it verified, and the
    report's lines."""
    n = len(requests)
    progress(f"{workers} worker(s): start_many x {n:,}")
    starts = asyncio.run(start_all(db_path, requests, chunk))
    lines = [f"  start_many: {starts:.2f}s, {n / starts:,.0f} starts/s (this process)"]
    total = 0.0
    with spawned(db_path, workers) as pipes:
        for label, advance in PHASES:
            progress(f"{workers} worker(s): {label}")
            began = time.perf_counter()
            for pipe in pipes:
                pipe.send(advance)
            answers = [pipe.recv() for pipe in pipes]
            wall = time.perf_counter() - began
            total += wall
            claimed = ", ".join(f"{c:,}" for c, _ in answers)
            cpu = ", ".join(f"{s:.1f}s" for _, s in answers)
            lines.append(
                f"  {label:<13} {wall:7.2f}s wall {n / wall:>9,.0f} transitions/s"
                f"   claimed per worker: {claimed}; CPU per worker: {cpu}"
            )
        for pipe in pipes:
            pipe.send(STOP)
        finals = [pipe.recv() for pipe in pipes]
    sent: Counter[str] = Counter()
    for counts, _ in finals:
        sent.update(counts)
    rate = 4 * n / total
    verdict = "met" if rate >= TARGET_TRANSITIONS else "MISSED"
    lines.append(
        f"  4N transitions {total:7.2f}s wall {rate:>9,.0f} transitions/s"
        f"   (target >= {TARGET_TRANSITIONS:,.0f}: {verdict})"
    )
    peaks = ", ".join(f"{peak:.1f} MB" for _, peak in finals)
    lines.append(f"  peak RSS per worker: {peaks}")
    ok, checks = verify(db_path, n, dict(sent))
    lines.append(f"  verification: {'OK' if ok else 'FAIL'}")
    lines.extend(checks)
    return ok, lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="recipients (default 100000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--chunk", type=int, default=5_000, help="recipients per start_many")
    args = parser.parse_args(argv)
    if args.n < 1 or args.workers < 1 or args.chunk < 1:
        parser.error("-n, --workers and --chunk must be positive")
    revision = source_revision()
    progress(f"building {args.n:,} recipients (not timed)")
    requests, _ = build_requests(args.n)
    reports = []
    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp:
        for workers in dict.fromkeys((1, args.workers)):
            db_path = Path(tmp) / f"bench-{workers}.db"
            reports.append((workers, *run(db_path, requests, workers, args.chunk)))
    print(f"\nengine + SQLite store, N = {args.n:,}, worker processes; code: {revision}")
    for workers, _, lines in reports:
        print(f"\n{workers} worker process{'es' if workers > 1 else ''}:")
        print("\n".join(lines))
    return 0 if all(ok for _, ok, _ in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
