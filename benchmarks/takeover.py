"""Takeover after ``kill -9`` and timer lateness on PostgreSQL, with real ``outreach worker``
processes (issue #14: "takeover time after a kill -9, from the kill to the first send by
another worker; timer lateness, due time to handover, p50/p99 with and without the NOTIFY
hint").

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/takeover.py                      # lease 30 s, poll 5 s
    .venv/bin/python benchmarks/takeover.py --lease 10 --repeat 3 -n 40 --poll 2

The workers run ``tests/process_app.py`` (its channels log each send, with its time, as the
request leaves). Each part works in a scratch schema of its own, dropped afterwards.

1. Takeover: worker A claims a backlog of one-text notifications (``--backlog``, all in one
   claim, each send taking 1 s, 10 in flight) with a lease of ``--lease`` seconds; once A is
   sending, an idle worker B starts; A is killed with SIGKILL; the figure is the time from the
   kill to B's first send. A's lease is renewed every third of a lease, so expect between
   two thirds of a lease and a lease, plus B's poll.
2. Timer lateness: two idle workers; this process starts ``-n`` notifications at random
   moments (a text, then an email 2 s after the text was sent). Per notification, from the
   store's records: the first step's lateness (its creation, when it is due, to the text's
   handover: the wake-up) and the timer's (the text's ``sent_at`` plus the wait, to the email's
   handover). Once with the NOTIFY hint, once poll-only (``?notify=off`` on the workers' and
   this process's store URL), the workers polling every ``--poll`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import psycopg

from outreach import AsyncClient, Plan, Recipient, Step
from outreach._settings import Settings
from outreach.stores.postgres import PostgresStore
from outreach.testing import InMemoryChannel

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
sys.path.insert(0, str(TESTS))
from process_app import read_log  # noqa: E402

URL = os.environ.get("OUTREACH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
OUTREACH = Path(sys.executable).with_name("outreach")
TEMPLATES = REPO / "templates"
SECRET = "takeover-benchmark-secret-0123456789abcdef"
CONTEXT = {"flight": "9K 1042"}
ONE_TEXT = Plan(name="one-text", steps=[Step(channel="sms", template="flight_cancelled")])
TIMER_WAIT = timedelta(seconds=2)
TEXT_THEN_EMAIL = Plan(
    name="timer",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait=TIMER_WAIT),
        Step(channel="email", template="flight_cancelled"),
    ],
)


def pax(number: int) -> Recipient:
    return Recipient(
        id=f"pax-{number}", phone=f"+1617{2_000_000 + number:07d}", email=f"p{number}@b.example"
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


@dataclass
class Workers:
    """``outreach worker`` processes on one schema, logging to one file."""

    folder: Path
    store_url: str
    log: Path
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def spawn(self, **settings: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "OUTREACH_STORE": self.store_url,
            "OUTREACH_SECRET_KEY": SECRET,
            "OUTREACH_TEMPLATES": str(TEMPLATES),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
            "PROCESS_APP_LOG": str(self.log),
            **{f"PROCESS_APP_{name.upper()}": value for name, value in settings.items()},
        }
        stderr = (self.folder / f"worker-{len(self.started)}.stderr").open("wb")
        process = subprocess.Popen(
            [str(OUTREACH), "worker", "--app", "process_app:make_client"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        self.started.append((process, stderr))
        return process

    def entries(self, kind: str = "send") -> list[dict[str, Any]]:
        return [e for e in read_log(self.log) if e["kind"] == kind]

    async def until(self, condition: Callable[[], Any], what: str, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            if time.monotonic() > deadline:
                sys.exit(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)
        return value

    async def ready(self, process: subprocess.Popen[bytes]) -> None:
        await self.until(
            lambda: any(e["pid"] == process.pid for e in self.entries("ready")), "a worker"
        )

    def stop(self) -> None:
        """SIGTERM the workers this run started, by their own handles."""
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, stderr in self.started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=60)
            stderr.close()


@contextmanager
def scratch(notify: bool = True) -> Iterator[tuple[str, str, Path]]:
    """A schema (the workers' URL and this process's) and a folder, removed afterwards."""
    schema = f"bench_takeover_{uuid.uuid4().hex[:12]}"
    option = "" if notify else "&notify=off"
    try:
        with tempfile.TemporaryDirectory() as folder:
            yield schema, f"{URL}?options=-csearch_path%3D{schema}{option}", Path(folder)
    finally:
        with psycopg.connect(URL, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def client(schema: str, notify: bool = True) -> AsyncClient:
    return AsyncClient(
        store=PostgresStore(URL, schema=schema, notify=notify),
        channels={name: InMemoryChannel(name=name) for name in ("sms", "email")},
        templates=TEMPLATES,
        settings=Settings(secret_key=SECRET),
    )


async def takeover(lease: float, poll: float, backlog: int) -> float:
    """Seconds from ``kill -9`` of the worker holding the backlog to another one's send."""
    with scratch() as (schema, url, folder):
        async with client(schema) as ox:
            await ox.start_many(ONE_TEXT, [pax(i) for i in range(backlog)], context=CONTEXT)
        workers = Workers(folder, url, folder / "log")
        try:
            common = {"lease": str(lease), "poll": str(poll)}
            holder = workers.spawn(delay="1", batch=str(backlog), **common)
            await workers.until(lambda: workers.entries(), "the first worker to send")
            other = workers.spawn(delay="1", **common)
            await workers.ready(other)
            await asyncio.sleep(random.uniform(0, lease / 3))  # anywhere between renewals
            os.kill(holder.pid, signal.SIGKILL)
            killed = time.time()
            holder.wait(timeout=60)
            first = await workers.until(
                lambda: next((e for e in workers.entries() if e["pid"] == other.pid), None),
                "the takeover",
                timeout=lease * 3 + poll + 60,
            )
        finally:
            workers.stop()
        return float(first["at"]) - killed


async def lateness(n: int, poll: float, notify: bool) -> tuple[list[float], list[float]]:
    """Per notification, the first step's and the timer's lateness in milliseconds."""
    with scratch(notify) as (schema, url, folder):
        async with client(schema, notify) as ox:
            workers = Workers(folder, url, folder / "log")
            try:
                for _ in range(2):
                    await workers.ready(workers.spawn(delay="0.05", poll=str(poll)))
                await asyncio.sleep(0.5)
                started = []
                for i in range(n):
                    started.append(await ox.start(pax(i), TEXT_THEN_EMAIL, context=CONTEXT))
                    await asyncio.sleep(random.uniform(0.05, poll))
                ids = {n.id for n in started}
                await workers.until(
                    lambda: (
                        {e["notification"] for e in workers.entries() if e["channel"] == "email"}
                        >= ids
                    ),
                    "every email",
                    timeout=n * poll + 120,
                )
            finally:
                workers.stop()
            stored = [await ox.get(n.id) for n in started]
    firsts, timers = [], []
    for record in stored:
        text, email = sorted(record.attempts, key=lambda a: a.step)
        assert text.sent_at is not None
        firsts.append((text.created_at - record.created_at).total_seconds() * 1000)
        timers.append((email.created_at - (text.sent_at + TIMER_WAIT)).total_seconds() * 1000)
    return firsts, timers


def line(label: str, values: list[float]) -> str:
    return (
        f"{label:<34} p50 {percentile(values, 0.5):8.1f} ms  p99 {percentile(values, 0.99):8.1f}"
        f" ms  max {max(values):8.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    print(f"takeover after kill -9 (lease {args.lease:g} s, poll {args.poll:g} s):")
    for _ in range(args.repeat):
        seconds = await takeover(args.lease, args.poll, args.backlog)
        print(f"  kill -> first send by another worker: {seconds:6.2f} s", flush=True)
    print(f"timer lateness, 2 workers, n = {args.n}, poll {args.poll:g} s:")
    for notify in (True, False):
        firsts, timers = await lateness(args.n, args.poll, notify)
        mode = "NOTIFY" if notify else "poll only"
        print("  " + line(f"{mode}: start -> first handover", firsts))
        print("  " + line(f"{mode}: timer due -> handover", timers), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lease", type=float, default=30.0, help="the workers' lease (s)")
    parser.add_argument("--poll", type=float, default=5.0, help="the workers' poll interval (s)")
    parser.add_argument("--repeat", type=int, default=2, help="kills to time")
    parser.add_argument("--backlog", type=int, default=200, help="notifications the victim holds")
    parser.add_argument("-n", type=int, default=30, help="notifications timed for lateness")
    asyncio.run(main(parser.parse_args()))
