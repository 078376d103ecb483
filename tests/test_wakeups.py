"""Wake-ups: runners sleep until the next due time, and a write elsewhere wakes them early.

On PostgreSQL a start (or an acknowledgement, a cancellation, a follow-up) sends one NOTIFY
per transaction and listening runners wake; ``?notify=off`` is the poll-only mode. The
runners here run on a fake clock that nobody advances, so they cannot poll at all: only a
wake-up can make them send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from outreach import AsyncClient, AttemptStatus, Plan, Recipient, Status, Step
from outreach.exceptions import ConfigurationError, StoreError
from outreach.stores.memory import MemoryStore
from outreach.stores.postgres import PostgresStore, notify_option
from outreach.testing import FakeClock, InMemoryChannel

PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
CONTEXT = {"flight": "9K 1042"}
SMS_ONLY = Plan(name="sms-only", steps=[Step(channel="sms", template="flight_cancelled")])


async def _until(condition: Callable[[], object], *, polls: int = 2000) -> None:
    """Wait (in real time, bounded) for a condition that only the code under test can make
    true; nothing is asserted about how long it took."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


# -- URL option and unit behaviour ---------------------------------------------------------------


def test_notify_off_in_the_url_is_the_poll_only_mode_and_leaves_the_rest_of_the_url() -> None:
    url = "postgresql://u@db:6432/app?sslmode=require&notify=off&application_name=w"
    assert notify_option(url) == (
        "postgresql://u@db:6432/app?sslmode=require&application_name=w",
        False,
    )
    assert notify_option("postgresql://u@db/app") == ("postgresql://u@db/app", True)
    assert notify_option("postgresql://u@db/app?notify=on") == ("postgresql://u@db/app", True)
    assert PostgresStore("postgresql://u@db/app?notify=off").notify is False
    assert PostgresStore("postgresql://u@db/app", notify=False).notify is False
    assert PostgresStore("postgresql://u@db/app").notify is True


def test_a_notify_option_that_is_neither_on_nor_off_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match=r"notify='sometimes'.*notify=on or off"):
        PostgresStore("postgresql://u@db/app?notify=sometimes")


class _Counting(MemoryStore):
    """A memory store that records when runners claim, and hears as told."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.claims: list[datetime] = []
        self.watching: list[Callable[[], None]] = []
        self.watch_failures = 0

    async def claim_due(self, now: datetime, **kwargs: object) -> list:  # type: ignore[override]
        self.claims.append(self.clock.now())
        return await super().claim_due(now, **kwargs)  # type: ignore[arg-type]

    async def watch(self, heard: Callable[[], None]) -> None:
        if self.watch_failures:
            self.watch_failures -= 1
            raise StoreError("connection lost")
        self.watching.append(heard)
        await asyncio.Event().wait()  # hears only what the test says it hears


@pytest.fixture
async def counting(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> AsyncIterator[tuple[AsyncClient, _Counting]]:
    store = _Counting(clock)
    async with AsyncClient(
        store=store,
        channels=channels,
        templates=templates_dir,
        clock=clock,
        poll_interval=timedelta(hours=1),
    ) as ox:
        yield ox, store


async def test_a_burst_of_wake_ups_from_elsewhere_starts_rounds_no_closer_than_the_debounce(
    counting: tuple[AsyncClient, _Counting],
) -> None:
    client, store = counting
    worker = asyncio.create_task(client.run())
    try:
        await _until(lambda: store.watching and store.claims)
        [heard] = store.watching
        for _ in range(200):
            heard()
            await asyncio.sleep(0)
        await _until(lambda: len(store.claims) > 1)
        await asyncio.sleep(0.05)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    gaps = [b - a for a, b in zip(store.claims, store.claims[1:], strict=False)]
    assert gaps
    assert all(gap >= timedelta(milliseconds=50) for gap in gaps[1:])
    assert len(store.claims) < 200


async def test_a_store_that_stops_hearing_is_polled_and_listened_to_again_later(
    counting: tuple[AsyncClient, _Counting],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, store = counting
    store.watch_failures = 1
    worker = asyncio.create_task(client.run())
    try:
        await _until(lambda: store.claims)
        await _until(lambda: "not hearing other processes' writes" in caplog.text)
        assert store.watching == []

        def polled_and_listening() -> bool:
            clock.advance("1h")  # the poll (whenever the worker is asleep): a round, a new watch
            return bool(store.watching)

        await _until(polled_and_listening)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def test_on_sqlite_a_start_in_this_process_wakes_its_runner_at_once(
    client: AsyncClient, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    client.poll_interval = timedelta(hours=1)
    worker = asyncio.create_task(client.run())
    try:
        await asyncio.sleep(0.05)
        await client.start(PAX, SMS_ONLY, context=CONTEXT)
        await _until(lambda: len(channels["sms"].outbox) == 1)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


# -- PostgreSQL ------------------------------------------------------------------------------


async def _listening(url: str, schema: str) -> bool:
    """Whether some connection is LISTENing on this schema's channel now."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        cur = await db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
            (f'LISTEN "outreach.{schema}"',),
        )
        row = await cur.fetchone()
    return bool(row and row[0])


@pytest.fixture
async def pg_worker(
    postgres_url: str,
    postgres_schema: str,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    templates_dir: Path,
) -> AsyncIterator[AsyncClient]:
    """A worker running on PostgreSQL whose clock never moves: it can only be woken."""
    async with AsyncClient(
        store=PostgresStore(postgres_url, schema=postgres_schema),
        channels=channels,
        templates=templates_dir,
        clock=clock,
        poll_interval=timedelta(hours=1),
    ) as ox:
        worker = asyncio.create_task(ox.run())
        try:
            for _ in range(500):
                if await _listening(postgres_url, postgres_schema):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the worker never started listening")
            yield ox
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


@pytest.fixture
async def other_process(
    postgres_url: str, postgres_schema: str, clock: FakeClock, templates_dir: Path
) -> AsyncIterator[AsyncClient]:
    """Another client on the same database (its own pool, its own connections); it never runs
    anything itself."""
    async with AsyncClient(
        store=PostgresStore(postgres_url, schema=postgres_schema),
        channels={n: InMemoryChannel(name=n) for n in ("sms", "email", "voice")},
        templates=templates_dir,
        clock=clock,
    ) as ox:
        yield ox


@pytest.mark.integration
async def test_a_start_on_another_connection_wakes_a_sleeping_worker(
    pg_worker: AsyncClient,
    other_process: AsyncClient,
    channels: dict[str, InMemoryChannel],
) -> None:
    for number in range(3):  # each start wakes it again: not a one-off
        await other_process.start(
            Recipient(id=f"pax-{number}", phone=f"+1617555012{number}"),
            SMS_ONLY,
            context=CONTEXT,
        )
        await _until(lambda n=number: len(channels["sms"].outbox) == n + 1)  # type: ignore[misc]
    assert [m.to for m in channels["sms"].outbox] == [f"+1617555012{n}" for n in range(3)]


@pytest.mark.integration
async def test_an_acknowledgement_elsewhere_wakes_the_worker_for_its_follow_up(
    pg_worker: AsyncClient,
    other_process: AsyncClient,
    channels: dict[str, InMemoryChannel],
    plan: Plan,
) -> None:
    from outreach import FollowUp

    at_once = Plan(
        name="follow-up-at-once",
        steps=plan.steps,
        options=plan.options,
        follow_ups=[FollowUp(channel="voice", template="refund_check", after="0s")],
    )
    n = await other_process.start(PAX, at_once, context=CONTEXT)
    await _until(lambda: len(channels["sms"].outbox) == 1)
    await other_process.acknowledge(n.id, choice="2")
    await _until(lambda: len(channels["voice"].outbox) == 1)
    assert (await other_process.get(n.id)).status is Status.ACKNOWLEDGED


@pytest.mark.integration
async def test_an_undelivered_report_elsewhere_wakes_the_worker_to_escalate_at_once(
    pg_worker: AsyncClient,
    other_process: AsyncClient,
    channels: dict[str, InMemoryChannel],
    plan: Plan,
) -> None:
    n = await other_process.start(PAX, plan, context=CONTEXT)
    await _until(lambda: len(channels["sms"].outbox) == 1)
    [attempt] = (await other_process.get(n.id)).attempts
    await other_process.inbound.update_attempt(AttemptStatus.UNDELIVERED, attempt_id=attempt.id)
    await _until(lambda: len(channels["email"].outbox) == 1)  # not 15 minutes later: now


async def _notifies_until_marker(url: str, schema: str, write: Callable[[], object]) -> list[str]:
    """The payloads heard on the schema's channel while ``write()`` runs, up to a marker
    sent after it (notifications arrive in commit order)."""
    import psycopg

    channel = f"outreach.{schema}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listener:
        await listener.execute(f'LISTEN "{channel}"')
        await write()  # type: ignore[misc]
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as marker:
            await marker.execute("SELECT pg_notify(%s, 'marker')", (channel,))
        heard = []
        async for note in listener.notifies(timeout=30):
            if note.payload == "marker":
                return heard
            heard.append(note.payload)
    raise AssertionError("the marker never arrived")


@pytest.mark.integration
async def test_a_start_notifies_once_per_transaction_and_poll_only_mode_not_at_all(
    postgres_url: str, postgres_schema: str, clock: FakeClock, templates_dir: Path
) -> None:
    async def started(notify: str, count: int) -> list[str]:
        store = PostgresStore(f"{postgres_url}?notify={notify}", schema=postgres_schema)
        async with AsyncClient(
            store=store,
            channels={"sms": InMemoryChannel(name="sms")},
            templates=templates_dir,
            clock=clock,
        ) as ox:

            async def write() -> None:
                people = [Recipient(id=f"{notify}-{i}", phone="+16175550123") for i in range(count)]
                await ox.start_many(SMS_ONLY, people, context=CONTEXT)

            return await _notifies_until_marker(postgres_url, postgres_schema, write)

    assert await started("on", 50) == [""]  # fifty starts, one transaction, one NOTIFY
    assert await started("off", 50) == []


@pytest.mark.integration
async def test_in_poll_only_mode_the_store_hears_nothing_and_says_so_at_once(
    postgres_url: str, postgres_schema: str
) -> None:
    store = PostgresStore(f"{postgres_url}?notify=off", schema=postgres_schema)
    await store.open()
    try:
        heard: list[None] = []
        await asyncio.wait_for(store.watch(lambda: heard.append(None)), 5)
        assert heard == []
    finally:
        await store.close()


@pytest.mark.integration
async def test_an_unreachable_server_stops_the_listener_with_a_store_error() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=1)
    with pytest.raises(StoreError, match="stopped listening"):
        await store.watch(lambda: None)


@pytest.mark.integration
async def test_a_start_in_another_process_wakes_a_worker_process_that_polls_once_an_hour(
    postgres_url: str, postgres_schema: str, tmp_path: Path, templates_dir: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from process_app import read_log

    schema_maker = PostgresStore(postgres_url, schema=postgres_schema)
    await schema_maker.open()  # creates and migrates the schema
    await schema_maker.close()
    store = f"{postgres_url}?options=-csearch_path%3D{postgres_schema}"
    log, err = tmp_path / "sends", tmp_path / "worker.stderr"
    env = {
        **os.environ,
        "OUTREACH_STORE": store,
        "OUTREACH_SECRET_KEY": "wake-up-tests-secret-key-0123456789abcdef",
        "OUTREACH_TEMPLATES": str(templates_dir),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
        ),
        "PROCESS_APP_LOG": str(log),
        "PROCESS_APP_DELAY": "0",
        "PROCESS_APP_POLL": "3600",
    }
    outreach = Path(sys.executable).with_name("outreach")
    with err.open("wb") as sink:
        worker = subprocess.Popen(
            [str(outreach), "worker", "--app", "process_app:make_client"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:

        async def listening() -> bool:
            import psycopg

            async with await psycopg.AsyncConnection.connect(postgres_url) as db:
                cur = await db.execute(  # the schema's channel, named in the URL's options
                    "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
                    (f'LISTEN "outreach.{postgres_schema}"',),
                )
                row = await cur.fetchone()
            return bool(row and row[0])

        for _ in range(3000):
            assert worker.poll() is None, err.read_text()
            if await listening():
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"the worker never listened:\n{err.read_text()}")
        async with AsyncClient(
            store=store, channels={"sms": InMemoryChannel(name="sms")}, templates=templates_dir
        ) as ox:
            n = await ox.start(PAX, SMS_ONLY, context=CONTEXT)
        await _until(lambda: any(e.get("notification") == n.id for e in read_log(log)), polls=6000)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, err.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=60)
