"""Acceptance tests of scale-out with real ``outreach worker`` processes: four workers draining
a backlog on PostgreSQL, workers killed with SIGKILL and restarted (PostgreSQL, and one worker
on a SQLite file), and customers' answers racing four workers.

The workers run ``process_app:make_client`` (this folder on ``PYTHONPATH``), whose channels log
every send to one shared file as the request leaves; a short lease (``PROCESS_APP_LEASE``) lets
a killed worker's notifications be taken over within seconds. What reached the channel is read
from that log, and what was recorded from the store's own ``attempts`` table and records. Every
wait is a bounded poll; nothing is asserted about how long anything took.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from outreach import AsyncClient, AttemptStatus, Notification, Plan, Recipient, Status, Step
from outreach.stores import Store
from outreach.testing import InMemoryChannel
from process_app import MAX_IN_FLIGHT, read_log
from worker_processes import Worker, spawn_worker

pytestmark = pytest.mark.integration

T = TypeVar("T")

SECRET = "scale-out-secret-key-0123456789abcdef"
CONTEXT = {"flight": "9K 1042"}
TERMINAL = tuple(s.value for s in Status if s.is_terminal)
TEXT_THEN_EMAIL = Plan(
    name="text-then-email",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait="1s"),
        Step(channel="email", template="flight_cancelled", wait="1s"),
    ],
)
ONE_TEXT = Plan(
    name="one-text", steps=[Step(channel="sms", template="flight_cancelled", wait="1s")]
)
TEXT_THEN_CALL = Plan(
    name="text-then-call",
    steps=[
        Step(channel="sms", template="flight_cancelled"),
        Step(channel="voice", template="flight_cancelled"),
    ],
)
WAIT = 120.0  # seconds: the bound of every poll (a slow, busy machine never needs that long)


def pax(number: int) -> Recipient:
    """Passengers with numbers and mailboxes of their own (the per-recipient cap would pace
    one number)."""
    return Recipient(
        id=f"pax-{number}", phone=f"+1617{2_000_000 + number:07d}", email=f"pax-{number}@b.example"
    )


@dataclass
class Fleet:
    """Workers on one store, the send log they share, and the test's own client."""

    tmp: Path
    templates: Path
    store_url: str
    log: Path
    workers: list[Worker] = field(default_factory=list)

    def spawn(self, **settings: str) -> Worker:
        """Start ``outreach worker`` on this store with ``PROCESS_APP_<NAME>`` settings."""
        worker = spawn_worker(
            store=self.store_url,
            secret=SECRET,
            templates=self.templates,
            log=self.log,
            stderr_path=self.tmp / f"worker-{len(self.workers)}.stderr",
            settings=settings,
        )
        self.workers.append(worker)
        return worker

    def client(self, store: str | Store, **options: Any) -> AsyncClient:
        options.setdefault(
            "channels", {n: InMemoryChannel(name=n) for n in ("sms", "email", "voice")}
        )
        return AsyncClient(store=store, templates=self.templates, **options)

    def entries(self, kind: str = "send") -> list[dict[str, Any]]:
        return [entry for entry in read_log(self.log) if entry["kind"] == kind]

    async def ready(self, *workers: Worker) -> None:
        wanted = {w.pid for w in workers}
        await self.until(
            lambda: wanted <= {e["pid"] for e in self.entries("ready")}, "the workers to start"
        )

    async def until(self, condition: Callable[[], T], what: str, timeout: float = WAIT) -> T:
        """Poll ``condition`` until it is truthy (its value), failing fast if a worker died."""
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            for worker in self.workers:
                if worker.process.returncode is None and worker.process.poll() is not None:
                    raise AssertionError(
                        f"worker {worker.pid} exited with {worker.process.returncode}:\n"
                        + worker.stderr()
                    )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)
        return value

    def stop(self) -> None:
        """SIGTERM every worker still running (only the processes this test started)."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout=WAIT)
            worker.stderr_file.close()


@dataclass
class Tables:
    """The store's own tables, read with plain SQL (PostgreSQL or a SQLite file)."""

    url: str
    schema: str | None = None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.schema is None:
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as db:
                return db.execute(sql).fetchall()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"SET search_path TO {self.schema}")
            return db.execute(sql).fetchall()

    def unfinished(self) -> int:
        placeholders = ", ".join(f"'{status}'" for status in TERMINAL)
        [(count,)] = self.rows(
            f"SELECT count(*) FROM notifications WHERE status NOT IN ({placeholders})"
        )
        return int(count)

    def attempts(self) -> list[tuple[str, str, str, str]]:
        """Each attempt row: its id, notification, medium and status."""
        return [
            (str(a), str(n), str(m), str(s))
            for a, n, m, s in self.rows("SELECT id, notification_id, medium, status FROM attempts")
        ]


def worker_url(postgres_url: str, schema: str) -> str:
    return f"{postgres_url}?options=-csearch_path%3D{schema}"


@pytest.fixture
async def postgres_store(postgres_url: str, postgres_schema: str) -> AsyncIterator[Store]:
    """The test's schema, created and migrated before any worker starts (ask for it before
    ``fleet``: the workers stop before the schema is dropped)."""
    from outreach.stores.postgres import PostgresStore

    store = PostgresStore(postgres_url, schema=postgres_schema)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def pg_fleet(
    postgres_store: Store,
    postgres_url: str,
    postgres_schema: str,
    tmp_path: Path,
    templates_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Fleet, Tables]]:
    monkeypatch.setenv("OUTREACH_SECRET_KEY", SECRET)  # links signed here work in the workers
    fleet = Fleet(
        tmp_path, templates_dir, worker_url(postgres_url, postgres_schema), tmp_path / "log"
    )
    yield fleet, Tables(postgres_url, postgres_schema)
    fleet.stop()


@pytest.fixture
def sqlite_fleet(
    tmp_path: Path, templates_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Fleet, Tables]]:
    monkeypatch.setenv("OUTREACH_SECRET_KEY", SECRET)
    url = f"sqlite:///{tmp_path / 'outreach.db'}"
    fleet = Fleet(tmp_path, templates_dir, url, tmp_path / "log")
    yield fleet, Tables(url)
    fleet.stop()


async def start_backlog(ox: AsyncClient, plan: Plan, count: int) -> list[Notification]:
    started: list[Notification] = []
    for first in range(0, count, 1000):
        people = [pax(i) for i in range(first, min(first + 1000, count))]
        started += await ox.start_many(plan, people, context=CONTEXT)
    return started


async def test_four_workers_drain_ten_thousand_notifications_each_step_once(
    pg_fleet: tuple[Fleet, Tables], postgres_store: Store
) -> None:
    """A text then an email (a second's wait each) to 10,000 people, due at once: every step
    reaches the channel once (the send log) and is stored once, `sent` (the attempts table),
    every notification ends `exhausted`, and each of the four workers did part of it."""
    fleet, tables = pg_fleet
    count = 10_000
    async with fleet.client(postgres_store) as ox:
        started = await start_backlog(ox, TEXT_THEN_EMAIL, count)
    settings = {"delay": "0", "lease": "10", "batch": "200", "poll": "0.5"}
    workers = [fleet.spawn(**settings) for _ in range(4)]
    await fleet.ready(*workers)
    await fleet.until(
        lambda: tables.unfinished() == 0, "every notification to end", timeout=2 * WAIT
    )
    fleet.stop()

    sends = fleet.entries()
    attempts = tables.attempts()
    by_step = Counter((e["notification"], e["channel"]) for e in sends)
    print(
        f"drain: {len(sends)} sends, {len(attempts)} attempts;"
        f" per worker: {sorted(Counter(e['pid'] for e in sends).values())}"
    )
    assert len(by_step) == 2 * count, "a step never reached the channel"
    assert max(by_step.values()) == 1, "a step reached the channel twice"
    assert Counter(e["attempt"] for e in sends).most_common(1)[0][1] == 1
    assert {(a, n) for a, n, _, _ in attempts} == {(e["attempt"], e["notification"]) for e in sends}
    assert Counter(status for _, _, _, status in attempts) == {AttemptStatus.SENT: 2 * count}
    assert Counter(medium for _, _, medium, _ in attempts) == {"sms": count, "email": count}
    assert {n for _, n, _, _ in attempts} == {n.id for n in started}
    assert len({e["pid"] for e in sends}) == 4, "a worker sent nothing: the test shared nothing"
    [(exhausted,)] = tables.rows("SELECT count(*) FROM notifications WHERE status = 'exhausted'")
    assert exhausted == count


async def kill_and_restart(
    fleet: Fleet, workers: list[Worker], settings: dict[str, str], kills: int
) -> list[int]:
    """Every few sends, ``kill -9`` the next worker in turn and start another in its place.
    Returns, per kill, how many of its logged requests may have been in flight."""
    in_flight: list[int] = []
    for round_ in range(kills):
        victim = workers[round_ % len(workers)]
        seen = len(fleet.entries())
        await fleet.until(lambda seen=seen: len(fleet.entries()) >= seen + 40, "more sends")
        await fleet.until(
            lambda victim=victim: any(e["pid"] == victim.pid for e in fleet.entries()[-20:]),
            "the worker to kill to be sending",
        )
        victim.kill()
        mine = [e for e in fleet.entries() if e["pid"] == victim.pid]
        in_flight.append(min(len(mine), MAX_IN_FLIGHT))
        replacement = fleet.spawn(**settings)
        workers[round_ % len(workers)] = replacement
        await fleet.ready(replacement)
    return in_flight


def check_nothing_lost_nothing_stuck(
    fleet: Fleet, tables: Tables, started: list[Notification], in_flight: list[int]
) -> None:
    sends = fleet.entries()
    attempts = tables.attempts()
    statuses = Counter(status for _, _, _, status in attempts)
    reached = Counter(e["notification"] for e in sends)
    recorded = Counter(n for _, n, _, _ in attempts)
    unknown = {n for _, n, _, status in attempts if status == AttemptStatus.UNKNOWN}
    duplicates = sum(times - 1 for times in reached.values())
    never = {n.id for n in started} - set(reached)
    print(
        f"kill -9 x{len(in_flight)}: {len(sends)} sends for {len(started)} texts, attempts"
        f" {dict(statuses)}, duplicates {duplicates}, never reached {len(never)},"
        f" in flight at the kills <= {in_flight}"
    )
    assert tables.unfinished() == 0, "a notification is stuck"
    assert AttemptStatus.SENDING not in statuses, "an attempt is stuck `sending`"
    assert set(recorded) == {n.id for n in started}, "a notification has no attempt: lost"
    assert max(recorded.values()) == 1, "a text was attempted twice"
    assert duplicates <= sum(in_flight), "more duplicates than requests in flight at the kills"
    assert Counter(e["attempt"] for e in sends).most_common(1)[0][1] == 1, "a request resent"
    # A request recorded as handed over an instant before a kill may not have reached the
    # channel: it is `unknown`, never resent.
    assert never <= unknown, "a notification was never texted and is not `unknown`"
    assert len(unknown) <= sum(in_flight), "more unknown than requests in flight at the kills"


async def test_kill_9_three_times_with_three_workers_on_postgres_loses_nothing(
    pg_fleet: tuple[Fleet, Tables], postgres_store: Store
) -> None:
    fleet, tables = pg_fleet
    async with fleet.client(postgres_store) as ox:
        started = await start_backlog(ox, ONE_TEXT, 1200)
    settings = {"delay": "0.5", "lease": "3", "batch": "40", "poll": "0.2"}
    workers = [fleet.spawn(**settings) for _ in range(3)]
    await fleet.ready(*workers)
    in_flight = await kill_and_restart(fleet, workers, settings, kills=3)
    await fleet.until(lambda: tables.unfinished() == 0, "every notification to end")
    fleet.stop()
    check_nothing_lost_nothing_stuck(fleet, tables, started, in_flight)
    assert len({e["pid"] for e in fleet.entries()}) >= 4, "the replacements sent nothing"


async def test_kill_9_three_times_with_one_worker_on_sqlite_loses_nothing(
    sqlite_fleet: tuple[Fleet, Tables],
) -> None:
    fleet, tables = sqlite_fleet
    async with fleet.client(fleet.store_url) as ox:
        started = await start_backlog(ox, ONE_TEXT, 600)
    settings = {"delay": "0.3", "lease": "3", "batch": "40", "poll": "0.2"}
    workers = [fleet.spawn(**settings)]
    await fleet.ready(*workers)
    in_flight = await kill_and_restart(fleet, workers, settings, kills=3)
    await fleet.until(lambda: tables.unfinished() == 0, "every notification to end")
    fleet.stop()
    check_nothing_lost_nothing_stuck(fleet, tables, started, in_flight)
    assert len({e["pid"] for e in fleet.entries()}) == 4, "a worker in turn sent nothing"


async def test_answers_racing_four_workers_stop_every_send_not_yet_handed_over(
    pg_fleet: tuple[Fleet, Tables], postgres_store: Store
) -> None:
    """The text fails for good, so the call is due at once, after an ``on_attempt`` hook that
    takes 0.2 s; 60 customers answer in the app at moments staggered around that hook while
    four workers run. After an answer commits nothing of that notification is handed over:
    every attempt's handover time is before the answer's event in the store, and a call whose
    request reached the channel after the answer is one handed over just before it, and is
    hung up."""
    fleet, tables = pg_fleet
    count = 60
    settings = {"delay": "0.1", "fail": "sms", "hook_delay": "0.2", "poll": "0.1", "batch": "5"}
    workers = [fleet.spawn(**settings) for _ in range(4)]
    await fleet.ready(*workers)
    offsets = [None, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6]  # after the text left
    channels = {name: InMemoryChannel(name=name) for name in ("sms", "voice")}
    async with fleet.client(postgres_store, channels=channels) as ox:

        async def answer(n: Notification, index: int) -> None:
            offset = offsets[index % len(offsets)]
            if offset is not None:
                await fleet.until(
                    lambda: any(e["notification"] == n.id for e in fleet.entries()),
                    f"the text of {n.id}",
                )
                await asyncio.sleep(offset)
            await ox.acknowledge(n.id, via="app")

        tasks = []
        for wave in range(count // 5):
            batch = [pax(wave * 5 + i) for i in range(5)]
            started = await ox.start_many(TEXT_THEN_CALL, batch, context=CONTEXT)
            tasks += [asyncio.create_task(answer(n, wave * 5 + i)) for i, n in enumerate(started)]
            await asyncio.sleep(0.15)
        await asyncio.gather(*tasks)

        def settled() -> bool:
            sending = [a for a in tables.attempts() if a[3] == AttemptStatus.SENDING]
            return not sending and late_calls(tables, fleet) <= hung_up(fleet, channels["voice"])

        await fleet.until(settled, "every request to answer and every late call hung up")
        fleet.stop()
        stored = [await ox.get(n_id) for (n_id,) in tables.rows("SELECT id FROM notifications")]

    sends = fleet.entries()
    assert len(stored) == count
    assert all(n.status is Status.ACKNOWLEDGED for n in stored)
    assert Counter(e["attempt"] for e in sends).most_common(1)[0][1] == 1, "a request sent twice"
    answered = answer_times(tables)
    for n in stored:
        handed_after = [a.id for a in n.attempts if a.created_at.timestamp() > answered[n.id]]
        assert not handed_after, f"{n.id}: attempts handed over after the answer"
    late = late_calls(tables, fleet)
    assert not late - hung_up(fleet, channels["voice"]), "a call placed after the answer"
    calls = {e["notification"] for e in sends if e["channel"] == "voice"}
    print(
        f"race with 4 workers: {count} answered; calls prevented: {count - len(calls)}, placed:"
        f" {len(calls)} ({len(late)} reached the channel after the answer and were hung up);"
        f" sends per worker: {sorted(Counter(e['pid'] for e in sends).values())}"
    )
    assert len({e["pid"] for e in sends}) > 1, "one worker did all the work"


def answer_times(tables: Tables) -> dict[str, float]:
    """Per notification, when its acknowledgement's event was stored (epoch seconds)."""
    rows = tables.rows("SELECT notification_id, at FROM events WHERE kind = 'acknowledged'")
    return {str(n): at.timestamp() for n, at in rows}


def late_calls(tables: Tables, fleet: Fleet) -> set[str]:
    """The call attempts whose request reached the channel after the answer was stored."""
    answered = answer_times(tables)
    return {
        e["attempt"]
        for e in fleet.entries()
        if e["channel"] == "voice"
        and e["notification"] in answered
        and e["at"] > answered[e["notification"]]
    }


def hung_up(fleet: Fleet, *channels: InMemoryChannel) -> set[str]:
    """The attempts whose call was hung up, by a worker or by this process."""
    provider_ids = [e["provider_id"] for e in fleet.entries("cancel")]
    provider_ids += [p for channel in channels for p in channel.cancelled]
    return {p.removeprefix("voice-") for p in provider_ids}


async def test_stores_given_the_schema_either_way_hear_each_others_wake_ups(
    postgres_store: Store, postgres_url: str, postgres_schema: str, templates_dir: Path
) -> None:
    """A worker configured with ``?options=-csearch_path%3D...`` (as these tests' workers are)
    and a process given ``schema=`` share tables, so they must share wake-ups too."""
    from outreach.stores.postgres import PostgresStore

    for number in (1, 2):
        named = PostgresStore(postgres_url, schema=postgres_schema)
        by_url = PostgresStore(worker_url(postgres_url, postgres_schema))
        writer, listener = (named, by_url) if number == 1 else (by_url, named)
        heard = asyncio.Event()
        async with AsyncClient(
            store=writer, channels={"sms": InMemoryChannel(name="sms")}, templates=templates_dir
        ) as ox:
            await listener.open()
            listening = asyncio.create_task(listener.watch(heard.set))
            await asyncio.wait_for(heard.wait(), timeout=30)  # heard once as listening starts
            heard.clear()
            await ox.start(pax(number), ONE_TEXT, context=CONTEXT)
            await asyncio.wait_for(heard.wait(), timeout=30)
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await listener.close()
