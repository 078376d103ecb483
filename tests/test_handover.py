"""Handover and stop: an attempt becomes `sending` only as its request leaves, nothing leaves
after the answer, and a stopped runner gives back everything it had not handed over."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from outreach import AsyncClient, AttemptStatus, Hooks, Notification, Plan, Recipient, Status, Step
from outreach._clock import SystemClock
from outreach.channels import Message, Receipt
from outreach.exceptions import StoreError
from outreach.stores import Change
from outreach.stores.memory import MemoryStore
from outreach.testing import FakeClock, InMemoryChannel

PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
CONTEXT = {"flight": "9K 1042"}
SMS_THEN_CALL = Plan(
    name="p",
    steps=[
        Step(channel="sms", template="flight_cancelled"),
        Step(channel="voice", template="flight_cancelled"),
    ],
)


class Held(InMemoryChannel):
    """Each send is handed to the provider at once and answers only when the test says."""

    def __init__(self, name: str, **options: object) -> None:
        super().__init__(name=name, **options)  # type: ignore[arg-type]
        self.started: list[Message] = []
        self.release = asyncio.Event()

    async def send(self, message: Message) -> Receipt:
        self.started.append(message)
        await self.release.wait()
        return await super().send(message)


async def until(condition: Callable[[], object], *, tries: int = 1000) -> None:
    """Let the runner (and the store's thread) work until ``condition()`` holds."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


def pax(number: int) -> Recipient:
    """Passengers with numbers of their own (the per-recipient cap would pace one number)."""
    return Recipient(id=f"pax-{number}", phone=f"+1617555{number:04d}")


async def test_a_stopped_run_hands_back_what_it_had_not_handed_over(
    clock: FakeClock, templates_dir: Path, tmp_path: Path
) -> None:
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
    store = f"sqlite:///{tmp_path / 'o.db'}"
    sms = Held("sms", max_in_flight=2)
    async with AsyncClient(
        store=store, channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        started = [await ox.start(pax(i), plan, context=CONTEXT) for i in range(6)]
        running = asyncio.create_task(ox.run_due())
        await until(lambda: len(sms.started) == 2)  # two in flight, four waiting for a slot
        running.cancel()
        sms.release.set()  # the two requests already handed over answer during the drain
        await asyncio.gather(running, return_exceptions=True)
        assert running.cancelled()
        stored = [await ox.get(n.id) for n in started]
    assert sum(len(n.attempts) for n in stored) == 2  # nothing recorded for the other four
    assert all(a.status is AttemptStatus.SENT for n in stored for a in n.attempts)

    # Their leases were given back: another process sends them at once, nothing twice.
    second = InMemoryChannel(name="sms")
    async with AsyncClient(
        store=store, channels={"sms": second}, templates=templates_dir, clock=clock
    ) as ox:
        await ox.run_due()
    sent = [m.notification_id for m in sms.outbox] + [m.notification_id for m in second.outbox]
    assert sorted(sent) == sorted(n.id for n in started)


async def test_close_stops_a_run_in_progress_and_no_task_outlives_it(
    clock: FakeClock, templates_dir: Path
) -> None:
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
    sms = Held("sms", max_in_flight=1)
    ox = AsyncClient(store="memory://", channels={"sms": sms}, templates=templates_dir, clock=clock)
    await ox.open()
    for i in range(3):
        await ox.start(pax(i), plan, context=CONTEXT)
    running = asyncio.create_task(ox.run())
    await until(lambda: len(sms.started) == 1)
    asyncio.get_running_loop().call_soon(sms.release.set)
    await ox.close()
    assert running.done()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


async def test_an_answer_during_a_slow_hook_stops_the_next_step_before_it_is_handed_over(
    clock: FakeClock, templates_dir: Path
) -> None:
    """The SMS fails for good, so the call is due at once; the customer answers (in the app)
    while the `on_attempt` hook of the failed SMS is still running: no call is placed."""
    entered, leave = asyncio.Event(), asyncio.Event()

    async def slow_hook(notification: Notification, attempt: object) -> None:
        entered.set()
        await leave.wait()

    channels = {"sms": InMemoryChannel(name="sms"), "voice": InMemoryChannel(name="voice")}
    channels["sms"].fail_next(permanent=True)
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        hooks=Hooks(on_attempt=slow_hook),
    ) as ox:
        n = await ox.start(PAX, SMS_THEN_CALL, context=CONTEXT)
        running = asyncio.create_task(ox.run_due())
        await entered.wait()
        await ox.acknowledge(n.id, via="app")
        leave.set()
        await running
        n = await ox.get(n.id)
    assert n.status is Status.ACKNOWLEDGED
    assert channels["voice"].outbox == []
    assert [a.channel for a in n.attempts] == ["sms"]


async def test_a_call_whose_create_request_was_in_flight_at_the_answer_is_hung_up(
    clock: FakeClock, templates_dir: Path
) -> None:
    channels = {"sms": InMemoryChannel(name="sms"), "voice": Held("voice")}
    channels["sms"].fail_next(permanent=True)
    async with AsyncClient(
        store="memory://", channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        n = await ox.start(PAX, SMS_THEN_CALL, context=CONTEXT)
        running = asyncio.create_task(ox.run_due())
        await until(lambda: bool(channels["voice"].started))  # the create request is out
        await ox.acknowledge(n.id, via="app")
        channels["voice"].release.set()  # ... and Twilio answers with the call's sid
        await running
        n = await ox.get(n.id)
    call = n.attempts[-1]
    assert n.status is Status.ACKNOWLEDGED
    assert call.provider_id is not None
    assert channels["voice"].cancelled == [call.provider_id]


class SlowToRecordSends(MemoryStore):
    """Holds each write that records a send's outcome until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.holding = asyncio.Event()
        self.recorded = False

    async def save(self, changes: Sequence[Change]) -> list[Notification | None]:
        outcome = any(a.status is AttemptStatus.SENT for c in changes for a in c.attempts)
        if outcome:
            self.holding.set()
            await self.gate.wait()
        saved = await super().save(changes)
        self.recorded = self.recorded or outcome
        return saved


async def test_a_stop_waits_for_the_outcome_of_a_request_that_has_left(
    clock: FakeClock, templates_dir: Path
) -> None:
    """Stopped after the provider answered but before the answer is stored, the run waits for
    that write: cancelled there, the attempt would stay `sending` (then `unknown`) though its
    lease is given back."""
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
    store = SlowToRecordSends()
    sms = InMemoryChannel(name="sms")
    async with AsyncClient(
        store=store, channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        n = await ox.start(PAX, plan, context=CONTEXT)
        running = asyncio.create_task(ox.run_due())
        await store.holding.wait()  # the text is out; its outcome is being written
        recorded_when_stopped: list[bool] = []
        running.add_done_callback(lambda _: recorded_when_stopped.append(store.recorded))
        running.cancel()
        # The write goes on once the run has stopped, or after a while if the run waits for it.
        await asyncio.wait([running], timeout=0.5)
        store.gate.set()
        await asyncio.gather(running, return_exceptions=True)
        assert recorded_when_stopped == [True]
        n = await ox.get(n.id)
    assert [a.status for a in n.attempts] == [AttemptStatus.SENT]


async def test_a_worker_stops_when_the_store_fails_as_it_gives_its_leases_back(
    clock: FakeClock, templates_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled mid-round, ``run()`` gives its leases back; a store that fails just then (a
    dropped schema, a lost server) is logged, and the cancellation still ends the run: it
    does not carry on polling."""
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
    sms = Held("sms", max_in_flight=1)
    store = MemoryStore()

    async def gone(notification_ids: Sequence[str], *, owner: str) -> int:
        raise StoreError("the store went away")

    store.release = gone  # type: ignore[method-assign]
    async with AsyncClient(
        store=store, channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        for i in range(3):
            await ox.start(pax(i), plan, context=CONTEXT)
        running = asyncio.create_task(ox.run())
        await until(lambda: len(sms.started) == 1)
        with caplog.at_level(logging.WARNING, logger="outreach.runner"):
            running.cancel()
            sms.release.set()
            await asyncio.wait({running}, timeout=30)
        assert running.cancelled()
    assert any("could not be given back" in r.getMessage() for r in caplog.records)


async def test_a_real_clock_sleep_cancelled_as_its_wake_up_is_set_ends_cancelled() -> None:
    """SIGTERM as another process's wake-up arrives: the worker's sleep must end cancelled
    (``asyncio.wait_for`` on Python 3.11 would return normally, and the worker carry on)."""
    clock, wake = SystemClock(), asyncio.Event()
    sleeping = asyncio.create_task(clock.sleep_until(clock.now() + timedelta(hours=1), wake))
    await asyncio.sleep(0.01)
    wake.set()
    sleeping.cancel()
    await asyncio.gather(sleeping, return_exceptions=True)
    assert sleeping.cancelled()
