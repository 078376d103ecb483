"""Throughput of 1, 2 and 4 worker processes sharing one PostgreSQL store, CPU-bound and
I/O-bound, with the 2-vs-1 and 4-vs-1 ratios (issue #14: 2 workers >= 1.8x one on the
I/O-bound case; on a 2-core machine >= 1.7x one on the CPU-bound case).

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/scale_workers.py                  # both cases, modest sizes
    .venv/bin/python benchmarks/scale_workers.py --case io --io-n 2000 --in-flight 10

Per case and worker count, on a scratch schema of its own (dropped afterwards): this process
starts every notification (``start_many``, not timed), then K worker processes (spawned, each
an ``AsyncClient`` with its own lease owner, a ``FakeClock`` at the same instant and its own
channels, claiming ``--batch`` at a time so they share the backlog) are told to ``run_due``
together; the figure is transitions over the wall time from the order to the last answer.

- ``cpu``: ``engine_sqlite.py``'s workload (3-step plan, counting ``InMemoryChannel``s):
  ``run_due`` at t0, +15m, +30m and +1h, 4N step transitions. Checked: N exhausted, 3N sends.
- ``io``: one SMS step through ``TwilioSMS`` (no pacing, ``--in-flight`` requests at a time
  per worker) to the loopback stub of ``/work/shared/bench/stub_provider.py`` answering after
  ``--latency`` ms: N sends. Checked: N attempts ``queued`` (Twilio's answer) in the store,
  N requests at the stub.

The stub (one more process) and the PostgreSQL server share the machine's cores with the
workers, so a CPU-bound ratio here is what this machine gives, not what more hosts would.
Needs the PostgreSQL server of the tests (``OUTREACH_TEST_POSTGRES``, default
postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from engine_sqlite import (
    CONTEXT,
    PHASES,
    START,
    TEMPLATES,
    bench_client,
    build_requests,
    counting_channels,
    make_plan,
)

from outreach import AsyncClient, Plan, StartRequest, Step
from outreach._settings import Settings
from outreach.channels import Channel, TwilioSMS
from outreach.testing import FakeClock

URL = os.environ.get("OUTREACH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
STUB = Path("/work/shared/bench/stub_provider.py")
ACCOUNT = "AC" + "0" * 32
ONE_TEXT = Plan(name="io-text", steps=[Step(channel="sms", template="flight_cancelled")])
STOP = "stop"


@dataclass(frozen=True)
class Case:
    """What the workers drive: ``cpu`` or ``io``, and for ``io`` the stub's port."""

    name: str
    in_flight: int
    stub_port: int | None = None

    def plan(self) -> Plan:
        return make_plan() if self.name == "cpu" else ONE_TEXT

    def phases(self) -> list[str | None]:
        return [advance for _, advance in PHASES] if self.name == "cpu" else [None]

    def channels(self) -> dict[str, Channel]:
        sms = TwilioSMS(
            account_sid=ACCOUNT,
            auth_token="stub-token",
            from_="+15550000001",
            base_url=f"http://127.0.0.1:{self.stub_port}",
            rate=None,
            max_in_flight=self.in_flight,
        )
        return {"sms": sms}


# --- a worker process -----------------------------------------------------------------------


def worker(schema: str, case: Case, batch: int, orders: Connection) -> None:
    logging.getLogger("outreach").setLevel(logging.ERROR)
    asyncio.run(serve(schema, case, batch, orders))


async def serve(schema: str, case: Case, batch: int, orders: Connection) -> None:
    from outreach.stores.postgres import PostgresStore

    clock = FakeClock(START)
    async with client(PostgresStore(URL, schema=schema), clock, case) as ox:
        ox.concurrency = batch
        orders.send("ready")
        while (order := orders.recv()) != STOP:
            cpu = time.process_time()
            if order is not None:
                clock.advance(order)
            claimed = await ox.run_due()
            orders.send((time.process_time() - cpu, claimed))


def client(store: Any, clock: FakeClock, case: Case) -> AsyncClient:
    if case.name == "cpu":
        return bench_client(store, clock, counting_channels())
    return AsyncClient(
        store=store,
        channels=case.channels(),
        templates=TEMPLATES,
        clock=clock,
        settings=Settings(secret_key="bench"),
        recipient_cap=None,
    )


@contextmanager
def spawned(schema: str, case: Case, batch: int, count: int) -> Iterator[list[Connection]]:
    """``count`` worker processes, ready for orders; stopped on the way out."""
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    pipes, processes = [], []
    try:
        for _ in range(count):
            mine, theirs = spawn.Pipe()
            process = spawn.Process(target=worker, args=(schema, case, batch, theirs), daemon=True)
            process.start()
            theirs.close()  # a worker that dies makes recv() fail instead of hang
            pipes.append(mine)
            processes.append(process)
        for pipe in pipes:
            pipe.recv()
        yield pipes
    finally:
        for pipe in pipes:
            with suppress(OSError):
                pipe.send(STOP)
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()


# --- one run --------------------------------------------------------------------------------


async def start_all(schema: str, case: Case, requests: Sequence[StartRequest]) -> None:
    from outreach.stores.postgres import PostgresStore

    async with client(PostgresStore(URL, schema=schema), FakeClock(START), case) as ox:
        for lo in range(0, len(requests), 1000):
            await ox.start_many(case.plan(), requests[lo : lo + 1000], context=CONTEXT)


def checked(schema: str, case: Case, n: int) -> str:
    """Says what is wrong with the run's outcome, or nothing."""
    import psycopg

    with psycopg.connect(URL, options=f"-csearch_path={schema}") as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM notifications GROUP BY 1"))
        attempts = dict(db.execute("SELECT status, count(*) FROM attempts GROUP BY 1"))
    # I/O case: active until the step's wait is over; Twilio's first answer is `queued`
    wanted = (
        ({"exhausted": n}, {"sent": 3 * n}) if case.name == "cpu" else (statuses, {"queued": n})
    )
    if (statuses, attempts) != wanted:
        return f"notifications {statuses}, attempts {attempts}"
    return ""


def run(case: Case, workers: int, requests: Sequence[StartRequest], batch: int) -> float:
    """Transitions per second of ``workers`` processes on a fresh schema."""
    import psycopg

    schema = f"bench_scale_{uuid.uuid4().hex[:12]}"
    n = len(requests)
    try:
        asyncio.run(start_all(schema, case, requests))
        with spawned(schema, case, batch, workers) as pipes:
            began = time.perf_counter()
            cpus, claims = [0.0] * workers, [0] * workers
            for advance in case.phases():  # every clock moves together, phase by phase
                for pipe in pipes:
                    pipe.send(advance)
                answers = [pipe.recv() for pipe in pipes]
                cpus = [c + cpu for c, (cpu, _) in zip(cpus, answers, strict=True)]
                claims = [c + claimed for c, (_, claimed) in zip(claims, answers, strict=True)]
            wall = time.perf_counter() - began
        problem = checked(schema, case, n)
    finally:
        with psycopg.connect(URL, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    if problem:
        sys.exit(f"{case.name}, {workers} worker(s): {problem}")
    transitions = 4 * n if case.name == "cpu" else n
    rate = transitions / wall
    cpu = ", ".join(f"{c:.1f}" for c in cpus)
    unit = "transitions" if case.name == "cpu" else "sends"
    print(
        f"  {workers} worker(s): {wall:6.2f} s wall, {rate:8,.0f} {unit}/s"
        f"  (CPU s per worker: {cpu}; claimed: {', '.join(map(str, claims))})",
        flush=True,
    )
    return rate


@contextmanager
def stub(latency_ms: int) -> Iterator[int]:
    """The loopback provider stub on a free port, for the I/O-bound case."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, str(STUB), str(port), str(latency_ms)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def stub_requests(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=5) as answer:
        return int(json.load(answer)["twilio"])


def scale(case: Case, n: int, batch: int) -> None:
    requests, _ = build_requests(n)
    rates = {}
    for workers in (1, 2, 4):
        before = stub_requests(case.stub_port) if case.stub_port else 0
        rates[workers] = run(case, workers, requests, batch)
        if case.stub_port and (got := stub_requests(case.stub_port) - before) != n:
            sys.exit(f"io, {workers} worker(s): the stub saw {got} requests for {n} sends")
    target = 1.7 if case.name == "cpu" else 1.8
    two = rates[2] / rates[1]
    verdict = "met" if two >= target else "MISSED"
    print(
        f"  ratios: 2 vs 1 {two:.2f}x (target >= {target}x: {verdict}),"
        f" 4 vs 1 {rates[4] / rates[1]:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("cpu", "io", "both"), default="both")
    parser.add_argument("--cpu-n", type=int, default=4_000, help="notifications, CPU case")
    parser.add_argument("--io-n", type=int, default=2_000, help="notifications, I/O case")
    parser.add_argument("--latency", type=int, default=50, help="stub latency, ms (I/O case)")
    parser.add_argument("--in-flight", type=int, default=10, help="requests per worker (I/O)")
    parser.add_argument("--batch", type=int, default=100, help="claim size per worker")
    args = parser.parse_args()
    logging.getLogger("outreach").setLevel(logging.ERROR)
    if args.case in ("cpu", "both"):
        print(f"CPU-bound: N = {args.cpu_n:,}, 3-step plan, InMemoryChannel, fake clock")
        scale(Case("cpu", args.in_flight), args.cpu_n, args.batch)
    if args.case in ("io", "both"):
        print(
            f"I/O-bound: N = {args.io_n:,} texts via TwilioSMS to the stub at {args.latency} ms,"
            f" {args.in_flight} in flight per worker"
        )
        with stub(args.latency) as port:
            scale(Case("io", args.in_flight, port), args.io_n, args.batch)


if __name__ == "__main__":
    main()
