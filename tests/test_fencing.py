"""Fencing and leases at the runner: a worker that lost its lease cannot finish a step twice,
a long send keeps its lease, and an acknowledgement commits while a worker holds the lease
(on memory, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from outreach import AsyncClient, AttemptStatus, Plan, Recipient, Status, Step
from outreach._runner import LEASE as RUNNER_LEASE
from outreach.channels import Message, Receipt
from outreach.stores import Store
from outreach.stores.sqlite import SQLiteStore
from outreach.testing import FakeClock, InMemoryChannel

PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
CONTEXT = {"flight": "9K 1042"}
SMS_THEN_EMAIL = Plan(
    name="p",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait="15m"),
        Step(channel="email", template="flight_cancelled"),
    ],
)
LEASE = timedelta(minutes=5)


class Held(InMemoryChannel):
    """Each send reaches the provider at once and answers only when the test says."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.started: list[Message] = []
        self.release = asyncio.Event()

    async def send(self, message: Message) -> Receipt:
        self.started.append(message)
        await self.release.wait()
        return await super().send(message)


async def until(condition: Callable[[], object], *, tries: int = 2000) -> None:
    """Let the runner (and the store's thread) work until ``condition()`` holds."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


def worker(
    store: str | Store, clock: FakeClock, templates: Path, channels: Mapping[str, InMemoryChannel]
) -> AsyncClient:
    return AsyncClient(store=store, channels=dict(channels), templates=templates, clock=clock)


async def test_a_worker_whose_lease_was_taken_over_does_not_record_its_send(
    clock: FakeClock, templates_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hands an SMS over and cannot renew (cut off); B claims once A's lease lapsed. A's
    outcome is refused, and B's takeover sees the attempt still `sending` (unknown)."""
    sms, email = Held("sms"), InMemoryChannel(name="email")
    path = tmp_path / "o.db"
    async with worker(f"sqlite:///{path}", clock, templates_dir, {"sms": sms, "email": email}) as a:
        cut_off = set[str]()

        async def no_renewal(leases: object, *, owner: str, until: datetime) -> set[str]:
            return cut_off

        a.store.renew = no_renewal  # type: ignore[method-assign]
        n = await a.start(PAX, SMS_THEN_EMAIL, context=CONTEXT)
        running = asyncio.create_task(a.run_due())
        await until(lambda: sms.started)
        clock.advance(LEASE)
        other = SQLiteStore(path)
        await other.open()
        taken = await other.claim_due(clock.now(), owner="b", lease=LEASE, limit=10)
        assert [t.id for t in taken] == [n.id]
        with caplog.at_level(logging.WARNING, logger="outreach.runner"):
            sms.release.set()
            await running
        assert any("another runner took it over" in r.getMessage() for r in caplog.records)
        stored = await other.get(n.id)
        await other.close()
    assert stored is not None
    assert [a.status for a in stored.attempts] == [AttemptStatus.SENDING]
    assert email.outbox == []  # A did not go on to the next step either


async def test_a_long_send_keeps_its_lease(
    clock: FakeClock, templates_dir: Path, tmp_path: Path
) -> None:
    """While a request is in flight for two leases' time, the runner renews its lease (one
    statement per round) and no other worker can claim the notification."""
    sms = Held("sms")
    path = tmp_path / "o.db"
    async with worker(f"sqlite:///{path}", clock, templates_dir, {"sms": sms}) as a:
        renewals: list[set[str]] = []
        renew = a.store.renew

        async def counted(leases: Mapping[str, int], *, owner: str, until: datetime) -> set[str]:
            kept = await renew(leases, owner=owner, until=until)
            renewals.append(kept)
            return kept

        a.store.renew = counted  # type: ignore[method-assign]
        n = await a.start(
            PAX,
            Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")]),
            context=CONTEXT,
        )
        running = asyncio.create_task(a.run_due())
        await until(lambda: sms.started)
        other = SQLiteStore(path)
        await other.open()
        for step in range(1, 7):
            clock.advance(LEASE / 3)
            await until(lambda step=step: len(renewals) >= step)
            assert await other.claim_due(clock.now(), owner="b", lease=LEASE, limit=10) == []
        await other.close()
        sms.release.set()
        await running
        assert all(kept == {n.id} for kept in renewals)
        done = await a.get(n.id)
    assert [a.status for a in done.attempts] == [AttemptStatus.SENT]
    assert len(sms.outbox) == 1


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'o.db'}"
    url: str = request.getfixturevalue("postgres_url")
    schema: str = request.getfixturevalue("postgres_schema")
    return f"{url}?options=-csearch_path%3D{schema}"


@pytest.fixture
async def two_processes(
    store_url: str, clock: FakeClock, templates_dir: Path
) -> AsyncIterator[tuple[AsyncClient, AsyncClient, Held, InMemoryChannel]]:
    """A worker and a webhook process on one store (on memory, one client plays both)."""
    sms, email = Held("sms"), InMemoryChannel(name="email")
    channels = {"sms": sms, "email": email}
    if store_url.startswith("postgresql"):
        from outreach.stores.postgres import PostgresStore

        schema = store_url.rsplit("%3D", 1)[1]
        base = store_url.split("?", 1)[0]
        store_a: str | Store = PostgresStore(base, schema=schema)
        store_b: str | Store = PostgresStore(base, schema=schema)
    else:
        store_a = store_b = store_url
    async with worker(store_a, clock, templates_dir, channels) as a:
        if store_url == "memory://":
            yield a, a, sms, email
            return
        async with worker(store_b, clock, templates_dir, {}) as b:
            yield a, b, sms, email


async def test_an_acknowledgement_commits_while_a_worker_holds_the_lease(
    two_processes: tuple[AsyncClient, AsyncClient, Held, InMemoryChannel], clock: FakeClock
) -> None:
    a, b, sms, email = two_processes
    n = await a.start(PAX, SMS_THEN_EMAIL, context=CONTEXT)
    running = asyncio.create_task(a.run_due())
    await until(lambda: sms.started)
    acked = await asyncio.wait_for(b.acknowledge(n.id, via="api"), timeout=30)
    assert acked.status is Status.ACKNOWLEDGED
    sms.release.set()
    await running
    clock.advance("15m")
    await a.run_due()
    final = await b.get(n.id)
    assert final.status is Status.ACKNOWLEDGED
    assert [at.status for at in final.attempts] == [AttemptStatus.SENT]  # the outcome kept
    assert email.outbox == []  # nothing after the acknowledgement


class ClaimedMeanwhile(InMemoryChannel):
    """Paced at 1/s; at each send, worker B tries to claim whatever is due or lapsed."""

    def __init__(self, other: Store, clock: FakeClock, *, max_in_flight: int | None = None):
        super().__init__(name="sms", rate=1, max_in_flight=max_in_flight)
        self.other, self.clock = other, clock
        self.taken: list[str] = []

    async def send(self, message: Message) -> Receipt:
        claimed = await self.other.claim_due(
            self.clock.now(), owner="b", lease=RUNNER_LEASE, limit=100
        )
        self.taken += [n.id for n in claimed]
        return await super().send(message)


async def test_a_30_s_lease_is_never_taken_over_while_its_step_waits_for_pacing(
    clock: FakeClock, templates_dir: Path, tmp_path: Path
) -> None:
    """Forty texts claimed at once at 1/s: those paced within the horizon wait in process
    (the fake clock jumps to each start at once), the rest are deferred in the store. A
    paced wait never outlasts the 30 s claim, even unrenewed, so B, claiming at every send,
    takes nothing over; each paced text is sent once, by A."""
    path = tmp_path / "o.db"
    other = SQLiteStore(path)
    await other.open()
    sms = ClaimedMeanwhile(other, clock)
    one_text = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled", wait="1h")])
    async with worker(f"sqlite:///{path}", clock, templates_dir, {"sms": sms}) as a:

        async def no_renewal(leases: Mapping[str, int], *, owner: str, until: datetime) -> set[str]:
            return set(leases)  # says it renewed, and did not: the claim alone must last

        a.store.renew = no_renewal  # type: ignore[method-assign]
        people = [Recipient(id=f"p{i}", phone=f"+1617555{i:04d}") for i in range(40)]
        await a.start_many(one_text, people, context=CONTEXT)
        await a.run_due()
        stored = await a.list(limit=100)
    await other.close()
    assert sms.taken == []
    assert len(sms.outbox) == 11  # slots 0 s to 10 s
    assert len({m.notification_id for m in sms.outbox}) == 11
    waiting = [n for n in stored if not n.attempts]
    assert len(waiting) == 29
    assert all(n.due_at is not None and n.due_at > clock.now() for n in waiting)


async def test_a_step_waiting_for_an_in_flight_slot_keeps_its_lease(
    clock: FakeClock, templates_dir: Path, tmp_path: Path
) -> None:
    """One slot, two texts: while the first is in flight for three leases' time, the second
    waits for the slot; both leases are renewed and B claims neither."""
    sms = Held("sms")
    sms.max_in_flight = 1
    path = tmp_path / "o.db"
    async with worker(f"sqlite:///{path}", clock, templates_dir, {"sms": sms}) as a:
        renewals: list[set[str]] = []
        renew = a.store.renew

        async def counted(leases: Mapping[str, int], *, owner: str, until: datetime) -> set[str]:
            kept = await renew(leases, owner=owner, until=until)
            renewals.append(kept)
            return kept

        a.store.renew = counted  # type: ignore[method-assign]
        one_text = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
        first = await a.start(PAX, one_text, context=CONTEXT)
        second = await a.start(PAX.model_copy(update={"id": "pax-18"}), one_text, context=CONTEXT)
        running = asyncio.create_task(a.run_due())
        await until(lambda: sms.started)
        other = SQLiteStore(path)
        await other.open()
        for step in range(1, 10):
            clock.advance(RUNNER_LEASE / 3)
            await until(lambda step=step: len(renewals) >= step)
            assert await other.claim_due(clock.now(), owner="b", lease=RUNNER_LEASE, limit=10) == []
        await other.close()
        assert len(sms.started) == 1
        sms.release.set()
        await running
    assert all(kept == {first.id, second.id} for kept in renewals)
    assert sorted(m.notification_id for m in sms.outbox) == sorted([first.id, second.id])
