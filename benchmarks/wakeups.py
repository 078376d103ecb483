"""Wake-up latency on PostgreSQL: from a start committed by one client to the first send by an
idle worker on another connection, with the NOTIFY hint and in poll-only mode (``?notify=off``);
and how many rounds (claims) a burst of acknowledgements elsewhere costs an idle worker.

    .venv/bin/python benchmarks/wakeups.py -n 200 --poll 1     # about 4 minutes
    .venv/bin/python benchmarks/wakeups.py -n 20 --poll 1      # a quick look

Needs the PostgreSQL server of the tests (``OUTREACH_TEST_POSTGRES``, default
postgresql://postgres@127.0.0.1:5432/test); works in a scratch schema it drops afterwards.
Starts come at random moments of the worker's idle time. Both clients share this process (one
event loop), so the figures include no process hop; with NOTIFY the latency is a LISTEN round
trip plus a claim, without it about half the poll interval on average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg

from outreach import AsyncClient, Plan, Recipient, Step
from outreach._settings import Settings
from outreach.channels import Message, Receipt
from outreach.stores.postgres import PostgresStore
from outreach.testing import InMemoryChannel

URL = os.environ.get("OUTREACH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PLAN = Plan(name="wake", steps=[Step(channel="sms", template="flight_cancelled", wait="1h")])
CONTEXT = {"flight": "9K 1042"}
SETTINGS = Settings(secret_key="benchmark-secret-key-0123456789abcdef")


class Signalling(InMemoryChannel):
    """Notes when each send starts."""

    def __init__(self) -> None:
        super().__init__(name="sms")
        self.sent: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def send(self, message: Message) -> Receipt:
        self.sent[message.notification_id] = time.perf_counter()
        self.arrived.set()
        return await super().send(message)


class CountingClaims(PostgresStore):
    claims = 0

    async def claim_due(self, *args: object, **kwargs: object) -> list:  # type: ignore[override]
        self.claims += 1
        return await super().claim_due(*args, **kwargs)  # type: ignore[arg-type]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


async def measure(n: int, poll: float, notify: bool, schema: str) -> tuple[list[float], int, int]:
    """Per start, seconds from its commit to its send; then the worker's claims during a burst
    of ``n`` acknowledgements and cancellations elsewhere (one transaction each), and ``n``."""
    option = "on" if notify else "off"
    channel = Signalling()
    worker_store = CountingClaims(f"{URL}?notify={option}", schema=schema)
    async with (
        AsyncClient(
            store=worker_store,
            channels={"sms": channel},
            templates=TEMPLATES,
            settings=SETTINGS,
            poll_interval=timedelta(seconds=poll),
            recipient_cap=None,
        ) as worker,
        AsyncClient(
            store=PostgresStore(f"{URL}?notify={option}", schema=schema),
            channels={"sms": InMemoryChannel(name="sms")},
            templates=TEMPLATES,
            settings=SETTINGS,
        ) as other,
    ):
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.5)  # listening, idle
        latencies = []
        started = []
        for i in range(n):
            channel.arrived.clear()
            person = Recipient(id=f"{option}-{i}", phone=f"+1617555{i % 10000:04d}")
            note = await other.start(person, PLAN, context=CONTEXT)
            committed = time.perf_counter()
            while note.id not in channel.sent:
                await channel.arrived.wait()
                channel.arrived.clear()
            latencies.append(channel.sent[note.id] - committed)
            started.append(note.id)
            await asyncio.sleep(random.uniform(0.05, poll))  # the worker idle again, somewhere
        await asyncio.sleep(0.2)
        before = worker_store.claims
        for i, notification_id in enumerate(started):  # one transaction each
            if i % 2:
                await other.cancel(notification_id)
            else:
                await other.acknowledge(notification_id, via="api")
        await asyncio.sleep(0.5)
        rounds = worker_store.claims - before
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    return latencies, rounds, n


async def main(n: int, poll: float) -> None:
    for notify in (True, False):
        schema = f"bench_wake_{uuid.uuid4().hex[:12]}"
        try:
            latencies, rounds, burst = await measure(n, poll, notify, schema)
        finally:
            with psycopg.connect(URL, autocommit=True) as db:
                db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        ms = [v * 1000 for v in latencies]
        mode = "NOTIFY     " if notify else "poll only  "
        print(
            f"{mode} start -> send: p50 {percentile(ms, 0.5):7.1f} ms  "
            f"p99 {percentile(ms, 0.99):7.1f} ms  max {max(ms):7.1f} ms  (n={n}, poll {poll:g} s)"
        )
        print(f"{'':11}  burst of {burst} acks/cancels elsewhere: {rounds} worker round(s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="starts (and then acks) to time")
    parser.add_argument("--poll", type=float, default=1.0, help="the worker's poll interval (s)")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.poll))
