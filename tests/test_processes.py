"""Acceptance tests of handover and stop with real processes on one SQLite file: ``outreach
worker`` killed with SIGKILL, stopped with SIGTERM or Ctrl-C, and two workers racing the
customers' answers.

The workers run ``process_app:make_client`` (this folder on ``PYTHONPATH``), whose channels log
every send to a file as it starts. Every wait is a bounded poll of that log or of the store;
nothing is asserted about how long anything took.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from outreach import AsyncClient, AttemptStatus, Notification, Plan, Recipient, Status, Step
from outreach.testing import FakeClock, InMemoryChannel
from outreach.webhooks import create_app
from process_app import read_log
from worker_processes import Worker, spawn_worker

pytestmark = pytest.mark.integration

T = TypeVar("T")

SECRET = "process-tests-secret-key-0123456789abcdef"
CONTEXT = {"flight": "9K 1042"}
SENDING = AttemptStatus.SENDING
ONE_TEXT = Plan(name="one-text", steps=[Step(channel="sms", template="flight_cancelled")])
TEXT_THEN_CALL = Plan(
    name="text-then-call",
    steps=[
        Step(channel="sms", template="flight_cancelled"),
        Step(channel="voice", template="flight_cancelled"),
    ],
)
WAIT = 60.0  # seconds: the bound of every poll (a slow, busy machine never needs that long)


def pax(number: int) -> Recipient:
    """Passengers with numbers of their own (the per-recipient cap would pace one number)."""
    return Recipient(id=f"pax-{number}", phone=f"+1617555{number:04d}")


def memory_channels() -> dict[str, InMemoryChannel]:
    return {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}


@dataclass
class Setup:
    """A SQLite file, a templates folder and the send log shared by the test and its workers."""

    tmp: Path
    templates: Path
    store: str
    log: Path
    workers: list[Worker] = field(default_factory=list)

    def spawn(self, **settings: str) -> Worker:
        """Start ``outreach worker`` with this set-up and ``PROCESS_APP_<NAME>`` settings."""
        worker = spawn_worker(
            store=self.store,
            secret=SECRET,
            templates=self.templates,
            log=self.log,
            stderr_path=self.tmp / f"worker-{len(self.workers)}.stderr",
            settings=settings,
        )
        self.workers.append(worker)
        return worker

    def client(self, **options: Any) -> AsyncClient:
        options.setdefault("channels", memory_channels())
        return AsyncClient(store=self.store, templates=self.templates, **options)

    def entries(self, kind: str = "send") -> list[dict[str, Any]]:
        return [entry for entry in read_log(self.log) if entry["kind"] == kind]

    async def until(self, condition: Callable[[], T], what: str, timeout: float = WAIT) -> T:
        """Poll ``condition`` until it is truthy (its value), failing fast if a worker died."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            for worker in self.workers:
                if worker.process.returncode is None:
                    worker.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)


@pytest.fixture
def setup(tmp_path: Path, templates_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("OUTREACH_SECRET_KEY", SECRET)  # links signed here work in the workers
    here = Setup(tmp_path, templates_dir, f"sqlite:///{tmp_path / 'outreach.db'}", tmp_path / "log")
    yield here
    for worker in here.workers:  # only the processes this test started, by their own handle
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=WAIT)
        worker.stderr_file.close()


def first_steps(n: Notification) -> list[Any]:
    return [a for a in n.attempts if (a.pass_, a.step) == (0, 0)]


async def test_kill_9_mid_run_sends_every_text_once_and_loses_only_what_was_in_flight(
    setup: Setup,
) -> None:
    async with setup.client() as ox:
        started = await ox.start_many(ONE_TEXT, [pax(i) for i in range(200)], context=CONTEXT)
    worker = setup.spawn(delay="0.2")
    await setup.until(lambda: len(setup.entries()) >= 30, "30 sends from the worker")
    os.kill(worker.pid, signal.SIGKILL)
    assert await worker.exit_code() == -signal.SIGKILL
    killed = [entry["notification"] for entry in setup.entries()]

    # Another process takes over once the leases have lapsed (5 minutes, on its own clock).
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=6))
    channels = memory_channels()
    async with setup.client(channels=channels, clock=clock) as ox:
        await ox.run_due()
        stored = [await ox.get(n.id) for n in started]
        for _ in range(5):  # past the step's wait, until everything is over
            if all(n.status.is_terminal for n in stored):
                break
            clock.advance("16m")
            await ox.run_due()
            stored = [await ox.get(n.id) for n in started]
    taken_over = [m.notification_id for m in channels["sms"].outbox]

    reached = Counter(killed + taken_over)
    unknown = {n.id for n in stored if any(a.status is AttemptStatus.UNKNOWN for a in n.attempts)}
    assert max(reached.values()) == 1, "a text was sent twice"
    # Exactly once, except that a request recorded as handed over an instant before the kill
    # may not have reached the channel yet: such a one is `unknown`, never resent.
    never = [n.id for n in stored if reached[n.id] == 0]
    assert set(never) <= unknown, "a notification was never texted and is not unknown"
    assert len(unknown) <= 10, f"{len(unknown)} unknown: more than the 10 requests in flight"
    assert unknown <= set(killed) | set(never)
    assert all(len(first_steps(n)) == 1 for n in stored), "a first step lost or doubled"
    assert all(n.status.is_terminal for n in stored), "a notification is stuck"
    assert not [a for n in stored for a in n.attempts if a.status is AttemptStatus.SENDING]
    print(
        f"kill -9: {len(killed)} logged by the killed worker, {len(taken_over)} sent after the"
        f" takeover, {len(unknown)} unknown ({len(never)} of them never reached the channel)"
    )


@pytest.mark.parametrize(
    ("signum", "aim"), [(signal.SIGTERM, 0.2), (signal.SIGINT, 0.0)], ids=["SIGTERM", "SIGINT"]
)
async def test_a_signalled_worker_finishes_what_it_handed_over_and_gives_the_rest_back(
    setup: Setup, signum: signal.Signals, aim: float
) -> None:
    """``aim`` delays the signal by one send's time after the 20th send began: about when the
    first requests answer and their outcomes are being stored (a stop there once left them
    `sending`). Whenever it lands, the expectations are the same."""
    async with setup.client() as ox:
        started = await ox.start_many(ONE_TEXT, [pax(i) for i in range(100)], context=CONTEXT)
    worker = setup.spawn(delay="0.2")
    await setup.until(lambda: len(setup.entries()) >= 20, "20 sends from the worker")
    await asyncio.sleep(aim)
    worker.process.send_signal(signum)
    assert await worker.exit_code() == 0, worker.stderr()
    assert "handed back" in worker.stderr()
    first = [entry["notification"] for entry in setup.entries()]

    async with setup.client() as ox:
        stored = {n.id: await ox.get(n.id) for n in started}
        statuses = Counter(a.status for n in stored.values() for a in n.attempts)
        assert statuses.keys() <= {AttemptStatus.SENT}, statuses  # none unknown, none sending
        with_attempts = {nid for nid, n in stored.items() if n.attempts}
        assert with_attempts == set(first), "what the worker logged is what it recorded"
        rest = set(stored) - with_attempts
        stopped = re.search(r"stopped: (\d+) notification\(s\) handed back", worker.stderr())
        assert stopped is not None, worker.stderr()
        # What the claim window held and had not sent; the rest were never claimed.
        assert 0 < int(stopped[1]) <= len(rest)

        channels = memory_channels()
        async with setup.client(channels=channels) as other:  # leases released: sent at once
            await other.run_due()
        second = [m.notification_id for m in channels["sms"].outbox]
        assert set(second) == rest
        assert sorted(first + second) == sorted(stored), "every text exactly once"


async def test_answers_racing_two_workers_stop_every_call_not_yet_handed_over(
    setup: Setup,
) -> None:
    """The text fails for good, so the call is due at once, after an `on_attempt` hook that
    takes 0.2 s; customers answer (half in the app, half on the link's page) at moments
    staggered around that hook. No call may leave after its answer: every attempt was handed
    over before the answer committed, and a call whose request began after the answer (which
    only a handover just before the answer explains) is hung up."""
    count = 60
    settings = {"delay": "0.1", "fail": "sms", "hook_delay": "0.2", "poll": "0.1"}
    workers = [setup.spawn(**settings), setup.spawn(**settings)]
    pids = await setup.until(
        lambda: {e["pid"] for e in setup.entries("ready")} >= {w.pid for w in workers} or None,
        "both workers to start",
    )
    assert pids
    offsets = [None, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6]  # after the text left
    answers: dict[str, str] = {}
    channels = memory_channels()
    async with setup.client(channels=channels) as ox:
        app = create_app(ox, twilio=False, sendgrid=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

            async def answer(n: Notification, index: int) -> None:
                by_page = index % 2 == 1
                offset = offsets[(index // 2) % len(offsets)]
                if offset is None and by_page:
                    offset = 0.0  # the page needs the text's link
                if offset is not None:
                    text = await setup.until(
                        lambda: next(
                            (e for e in setup.entries() if e["notification"] == n.id), None
                        ),
                        f"the text of {n.id}",
                    )
                    await asyncio.sleep(offset)
                if by_page:
                    path = urlsplit(text["ack_url"]).path
                    response = await http.post(path)
                    assert response.status_code == 200, response.text
                    answers[n.id] = "page"
                else:
                    await ox.acknowledge(n.id, via="app")
                    answers[n.id] = "app"

            tasks = []
            for wave in range(count // 5):
                batch = [pax(wave * 5 + i) for i in range(5)]
                started = await ox.start_many(TEXT_THEN_CALL, batch, context=CONTEXT)
                tasks += [
                    asyncio.create_task(answer(n, wave * 5 + i)) for i, n in enumerate(started)
                ]
                await asyncio.sleep(0.15)
            await asyncio.gather(*tasks)

            async def snapshot() -> list[Notification]:
                return [await ox.get(n) for n in answers]

            deadline = time.monotonic() + WAIT
            while True:
                stored = await snapshot()
                in_flight = [a for n in stored for a in n.attempts if a.status is SENDING]
                if not in_flight and late_calls(stored, setup.entries()) <= hung_up(
                    setup, channels["voice"]
                ):
                    break
                if time.monotonic() > deadline:
                    break  # the assertions below say what is wrong
                await asyncio.sleep(0.05)
        for worker in workers:
            worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            assert await worker.exit_code() == 0, worker.stderr()
        stored = await snapshot()

    sends = setup.entries()
    attempts = {a.id: a for n in stored for a in n.attempts}
    calls = [e for e in sends if e["channel"] == "voice"]
    assert len(answers) == count
    assert all(n.status is Status.ACKNOWLEDGED for n in stored)
    assert Counter(e["attempt"] for e in sends).most_common(1)[0][1] == 1, "a request sent twice"
    assert all(e["attempt"] in attempts for e in sends), "a request the store does not know"
    assert not [a for a in attempts.values() if a.status is AttemptStatus.SENDING]
    for n in stored:
        assert n.acknowledged_at is not None
        handed_after = [a.id for a in n.attempts if a.created_at > n.acknowledged_at]
        assert not handed_after, f"{n.id}: attempts handed over after the answer"
    late = late_calls(stored, sends)
    not_hung_up = late - hung_up(setup, channels["voice"])
    assert not not_hung_up, f"{len(not_hung_up)} call(s) placed after the answer, not hung up"
    placed = {e["notification"] for e in calls}
    print(
        f"race: {count} answered ({Counter(answers.values())}); calls prevented:"
        f" {count - len(placed)}, placed: {len(placed)} ({len(late)} of them began after the"
        f" answer and were hung up); sends per worker: {Counter(e['pid'] for e in sends)}"
    )


def late_calls(stored: list[Notification], sends: list[dict[str, Any]]) -> set[str]:
    """The call attempts whose request reached the channel after the answer committed."""
    answered = {n.id: n.acknowledged_at for n in stored}
    return {
        entry["attempt"]
        for entry in sends
        if entry["channel"] == "voice"
        and (at := answered.get(entry["notification"])) is not None
        and entry["at"] > at.timestamp()
    }


def hung_up(setup: Setup, *channels: InMemoryChannel) -> set[str]:
    """The attempts whose call was hung up, by a worker or by this process."""
    provider_ids = [e["provider_id"] for e in setup.entries("cancel")]
    provider_ids += [p for channel in channels for p in channel.cancelled]
    return {p.removeprefix("voice-") for p in provider_ids}
