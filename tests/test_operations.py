"""Operations: ``outreach db upgrade`` and ``db prune``, ``/healthz`` touching the store, the
sweeper, ``worker --concurrency`` and ``serve --no-worker``.

Store-level behaviour runs on SQLite and PostgreSQL alike; the commands run in real
processes where signals matter, else through Typer's runner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from outreach import AsyncClient, AttemptStatus, Plan, Recipient, Status, Step
from outreach._clock import SystemClock
from outreach._durations import parse_duration
from outreach._models import EventKind
from outreach._sweeper import Sweeper
from outreach._webhooks import _app
from outreach.channels import Message, Receipt
from outreach.cli import app
from outreach.exceptions import ConfigurationError
from outreach.stores import Change, Claimed, Store
from outreach.stores.postgres import PostgresStore
from outreach.stores.sqlite import SQLiteStore
from outreach.testing import FakeClock, InMemoryChannel
from outreach.webhooks import create_app

OUTREACH = Path(sys.executable).with_name("outreach")
SECRET = "operations-tests-secret-key-0123456789abcdef"
CONTEXT = {"flight": "9K 1042"}
ONE_TEXT = Plan(name="one-text", steps=[Step(channel="sms", template="flight_cancelled")])
LONG_AGO = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # far more than 90 days before today
WAIT = 60.0


def pax(number: int) -> Recipient:
    return Recipient(
        id=f"pax-{number}",
        phone=f"+1617555{number:04d}",
        email=f"pax{number}@example.com",
        timezone="America/New_York",
        attributes={"name": f"Passenger {number}"},
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of each kind, a fresh database each (PostgreSQL: a schema of its own)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outreach.db'}"
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    return f"{url}?options=-csearch_path%3D{schema}"


def _client(url: str, clock: Any, templates: Path, **options: Any) -> AsyncClient:
    options.setdefault("channels", {n: InMemoryChannel(name=n) for n in ("sms", "email", "voice")})
    return AsyncClient(store=url, templates=templates, clock=clock, **options)


def _sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Write behind the store's back (to forge a state no code path should reach)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.execute(statement.replace("%s", "?"), params)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(statement, params)


# -- db upgrade ------------------------------------------------------------------------------


@pytest.mark.integration
def test_db_upgrade_migrates_and_says_which_version(store_url: str) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--store", store_url, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["schema_version"] >= 4
    assert answer["store"].startswith(("SQLiteStore(/", "PostgresStore(127.0.0.1/test"))
    again = CliRunner().invoke(app, ["db", "upgrade", "--store", store_url])
    assert again.exit_code == 0
    assert f"is at schema version {answer['schema_version']}" in again.output


def test_db_upgrade_of_an_unreachable_server_fails_with_the_reason() -> None:
    result = CliRunner().invoke(
        app, ["db", "upgrade", "--store", "postgresql://postgres@127.0.0.1:1/test"]
    )
    assert result.exit_code == 1
    assert "cannot connect" in result.output


# -- db prune --------------------------------------------------------------------------------


async def _seed(url: str, templates: Path) -> dict[str, str]:
    """Long ago: one acknowledged (after a reply that matched nothing), one cancelled, one
    still active; one started long ago and cancelled recently; one started and cancelled
    recently. The ids by role."""
    long_ago = FakeClock(LONG_AGO)
    async with _client(url, long_ago, templates) as ox:
        acked, cancelled, active, late = [
            await ox.start(pax(i), ONE_TEXT, context=CONTEXT, key=f"old-{i}", campaign="c")
            for i in range(4)
        ]
        await ox.run_due()
        await ox.inbound.record_reply(acked.id, via="sms", text="my number is +16175559999")
        await ox.acknowledge(acked.id, via="sms", choice=None)
        await ox.cancel(cancelled.id, reason="flight restored")
    async with _client(url, SystemClock(), templates) as ox:
        recent = await ox.start(pax(4), ONE_TEXT, context=CONTEXT, key="new-4", campaign="c")
        await ox.cancel(recent.id)
        await ox.cancel(late.id)
    return {
        "acked": acked.id,
        "cancelled": cancelled.id,
        "active": active.id,
        "late": late.id,
        "recent": recent.id,
    }


def _report(url: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["report", "c", "--format", "json", "--store", url])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


@pytest.mark.integration
async def test_prune_removes_personal_data_of_old_finished_notifications_and_keeps_the_counts(
    store_url: str, templates_dir: Path
) -> None:
    ids = await _seed(store_url, templates_dir)
    before = await asyncio.to_thread(_report, store_url)

    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["db", "prune", "--older-than", "90d", "--store", store_url]
    )
    assert result.exit_code == 0, result.output
    assert "pruned 2 notification(s) finished before" in result.output

    assert await asyncio.to_thread(_report, store_url) == before
    async with _client(store_url, SystemClock(), templates_dir) as ox:
        for role in ("acked", "cancelled"):
            n = await ox.get(ids[role])
            assert n.recipient.id == f"pax-{list(ids).index(role)}"
            assert (n.recipient.phone, n.recipient.email, n.recipient.timezone) == (None,) * 3
            assert n.recipient.attributes == {}
            assert n.context == {}
            assert all(a.address is None for a in n.attempts)
        assert (await ox.get(ids["acked"])).status is Status.ACKNOWLEDGED
        for role in ("active", "late", "recent"):  # running, or finished too recently
            n = await ox.get(ids[role])
            assert n.recipient.phone is not None
            assert n.context == CONTEXT
        events = [e async for e in ox.events()]
        replies = [e for e in events if e.kind is EventKind.REPLY]
        assert replies
        assert all("text" not in e.data for e in replies)
        assert "+16175559999" not in json.dumps([e.data for e in events], default=str)

    again = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["db", "prune", "--older-than", "90d", "--store", store_url, "--json"],
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["pruned"] == 0


@pytest.mark.integration
async def test_a_writer_holding_a_copy_from_before_the_prune_cannot_put_the_data_back(
    store_url: str, templates_dir: Path
) -> None:
    ids = await _seed(store_url, templates_dir)
    async with _client(store_url, SystemClock(), templates_dir) as ox:
        stale = await ox.get(ids["cancelled"])
        assert await ox.store.prune(SystemClock().now() - timedelta(days=90)) == 2
        assert await ox.store.save([Change(stale)]) == [None]
        assert (await ox.get(ids["cancelled"])).recipient.phone is None


@pytest.mark.parametrize(
    ("age", "message"),
    [("ninety days", "is not a duration"), ("0s", "give an age such as 90d")],
)
def test_prune_refuses_an_age_that_is_not_one(tmp_path: Path, age: str, message: str) -> None:
    url = f"sqlite:///{tmp_path / 'outreach.db'}"
    result = CliRunner().invoke(app, ["db", "prune", "--older-than", age, "--store", url])
    assert result.exit_code == 2
    assert "--older-than" in result.output
    assert message in result.output
    assert not (tmp_path / "outreach.db").exists()


def test_prune_never_creates_a_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    result = CliRunner().invoke(app, ["db", "prune", "--older-than", "90d", "--store", url])
    assert result.exit_code == 2
    assert "no store at" in result.output
    assert not (tmp_path / "missing.db").exists()


def test_prune_needs_an_age() -> None:
    result = CliRunner().invoke(app, ["db", "prune"])
    assert result.exit_code == 2
    assert "--older-than" in result.output


async def _receipts(url: str, ages: dict[str, timedelta]) -> None:
    """Remember one webhook receipt per key, received that long ago."""
    now = SystemClock().now()
    async with _client(url, SystemClock(), Path()) as ox:
        for key, age in ages.items():
            assert await ox.store.remember(key, now - age)


async def _still_seen(url: str, keys: list[str]) -> list[str]:
    """Of ``keys``, those a replayed callback would still be recognised by."""
    async with _client(url, SystemClock(), Path()) as ox:
        return [key for key in keys if not await ox.store.remember(key, SystemClock().now())]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("older_than", "signature_max_age", "kept", "deleted"),
    [
        ("90d", None, ["89d"], ["91d"]),
        ("1h", None, ["2h", "24h"], ["26h"]),  # never younger than the replay window (25 h)
        ("1h", "3h", ["2h"], ["4h", "26h"]),  # a shorter window of the host's own
    ],
    ids=["older-than wins", "default window wins", "configured window"],
)
async def test_prune_deletes_webhook_receipts_older_than_both_the_age_and_the_replay_window(
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    older_than: str,
    signature_max_age: str | None,
    kept: list[str],
    deleted: list[str],
) -> None:
    if signature_max_age is not None:
        monkeypatch.setenv("OUTREACH_SIGNATURE_MAX_AGE", signature_max_age)
    ages = {f"sg:{age}": parse_duration(age) for age in [*kept, *deleted]}
    await _receipts(store_url, ages)
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["db", "prune", "--older-than", older_than, "--store", store_url, "--json"],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["receipts_deleted"] == len(deleted)
    window = max(parse_duration(older_than), parse_duration(signature_max_age or "25h"))
    cutoff = datetime.fromisoformat(answer["receipts_before"])
    assert abs(SystemClock().now() - window - cutoff) < timedelta(minutes=1)
    assert await _still_seen(store_url, list(ages)) == [f"sg:{age}" for age in kept]


@pytest.mark.integration
async def test_the_stores_prune_keeps_receipts_a_replay_window_past_its_cutoff(
    store_url: str,
) -> None:
    """Called without ``receipts_before``, the store keeps 25 h more than it was asked to."""
    ages = {f"k{hours}": timedelta(hours=hours) for hours in (1, 24, 48, 50, 61, 62)}
    await _receipts(store_url, ages)
    async with _client(store_url, SystemClock(), Path()) as ox:
        pruned = await ox.store.prune(SystemClock().now() - timedelta(days=1), batch=2)
        assert (pruned, pruned.receipts) == (0, 3)  # 50, 61 and 62 h, in batches of 2
        again = await ox.store.prune(SystemClock().now() - timedelta(days=1))
        assert again.receipts == 0
    assert await _still_seen(store_url, list(ages)) == ["k1", "k24", "k48"]


# -- /healthz --------------------------------------------------------------------------------


def _web(client: AsyncClient) -> httpx.AsyncClient:
    web = create_app(client, insecure_dev=True)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://test")


async def test_healthz_is_ok_when_the_store_answers(client: AsyncClient) -> None:
    async with _web(client) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_healthz_is_503_with_the_reason_when_the_store_is_not_there(
    templates_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = AsyncClient(store="memory://", templates=templates_dir)  # never opened
    async with _web(closed) as http:
        response = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "not open" in response.json()["reason"]
    assert "health check failed" in caplog.text


class _Hanging(SQLiteStore):
    async def schema_version(self) -> int:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_healthz_is_503_when_the_store_does_not_answer_in_time(
    templates_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_app, "HEALTH_TIMEOUT", 0.05)
    hanging = AsyncClient(store=_Hanging(":memory:"), templates=templates_dir)
    async with hanging as ox, _web(ox) as http:
        response = await http.get("/healthz")
    assert response.status_code == 503
    assert "did not answer within 0.05 s" in response.json()["reason"]


@pytest.mark.integration
async def test_healthz_on_postgres_is_503_once_the_server_is_gone(
    postgres_url: str, postgres_schema: str, templates_dir: Path
) -> None:
    store = PostgresStore(postgres_url, schema=postgres_schema)
    async with AsyncClient(store=store, templates=templates_dir) as ox, _web(ox) as http:
        assert (await http.get("/healthz")).status_code == 200
        await store.close()  # as good as unreachable to this process
        response = await http.get("/healthz")
    assert response.status_code == 503
    assert "PostgreSQL" in response.json()["reason"] or "not open" in response.json()["reason"]


# -- the sweeper -----------------------------------------------------------------------------


class _Stalling(InMemoryChannel):
    """Takes every request and never answers: the attempt stays `sending`."""

    async def send(self, message: Message) -> Receipt:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def _stuck_pair(url: str, clock: FakeClock, templates: Path) -> tuple[str, str]:
    """A notification active with nothing scheduled, and one whose send never came back and
    whose lease ran out long ago with no takeover (its worker gone). Their ids."""
    async with _client(
        url,
        clock,
        templates,
        channels={"sms": _Stalling(name="sms")},
        drain_timeout=timedelta(0),
    ) as ox:
        lost, sending = [
            await ox.start(pax(i), ONE_TEXT, context=CONTEXT, key=f"k{i}") for i in range(2)
        ]
        worker = asyncio.create_task(ox.run_due())
        for _ in range(500):
            n = await ox.get(sending.id)
            if n.attempts and n.attempts[0].status is AttemptStatus.SENDING:
                break
            await asyncio.sleep(0.01)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    long_ago = clock.now() - timedelta(hours=1)
    stamp: Any = long_ago if not url.startswith("sqlite") else int(long_ago.timestamp() * 1e6)
    _sql(
        url,
        "UPDATE notifications SET lease_owner = 'gone', lease_until = %s, due_at = NULL "
        "WHERE id = %s",
        (stamp, sending.id),
    )
    _sql(
        url,
        "UPDATE notifications SET status = 'active', due_at = NULL, lease_until = NULL "
        "WHERE id = %s",
        (lost.id,),
    )
    return lost.id, sending.id


@pytest.mark.integration
async def test_the_sweeper_reports_stuck_notifications_by_id_once_a_minute_at_most(
    store_url: str, templates_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    lost, sending = await _stuck_pair(store_url, clock, templates_dir)
    async with _client(store_url, clock, templates_dir) as ox:
        sweeper = Sweeper(ox.store, clock)
        with caplog.at_level(logging.WARNING, logger="outreach.sweeper"):
            found = await sweeper.sweep_if_due()
        assert {(s.notification_id, s.reason) for s in found} == {
            (lost, "active with nothing scheduled"),
            (sending, "an attempt is sending and its lease ran out without a takeover"),
        }
        lines = [r.getMessage() for r in caplog.records if r.name == "outreach.sweeper"]
        assert len(lines) == 2
        assert all(r.levelno == logging.WARNING for r in caplog.records)
        assert not any("+1617" in line or "example.com" in line for line in lines)
        assert await sweeper.sweep_if_due() == []  # not twice within a minute
        clock.advance("1m")
        assert len(await sweeper.sweep_if_due()) == 2
        stuck = [e for e in [e async for e in ox.events()] if e.kind is EventKind.STUCK]
        assert sorted(e.notification_id for e in stuck) == sorted([lost, sending] * 2)


@pytest.mark.integration
async def test_a_healthy_store_has_nothing_stuck(
    store_url: str, templates_dir: Path, clock: FakeClock
) -> None:
    async with _client(store_url, clock, templates_dir) as ox:
        await ox.start(pax(1), ONE_TEXT, context=CONTEXT)
        await ox.run_due()
        n = await ox.start(pax(2), ONE_TEXT, context=CONTEXT)
        await ox.cancel(n.id)
        assert await Sweeper(ox.store, clock).sweep_if_due() == []


async def test_every_worker_runs_the_sweeper(
    tmp_path: Path, templates_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'outreach.db'}"
    clock = FakeClock()
    lost, _ = await _stuck_pair(url, clock, templates_dir)
    async with _client(url, clock, templates_dir) as ox:
        worker = asyncio.create_task(ox.run())
        try:
            for _ in range(500):
                if f"notification {lost} is stuck" in caplog.text:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the worker never swept")
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


async def test_a_failing_sweep_is_logged_and_the_worker_carries_on(
    templates_dir: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncClient(store="memory://", templates=templates_dir, clock=clock) as ox:
        store: Store = ox.store
        await store.close()  # every read fails now
        assert await Sweeper(store, clock).sweep_if_due() == []
    assert "the sweep for stuck notifications failed" in caplog.text


# -- concurrency -----------------------------------------------------------------------------


class _Counting(InMemoryChannel):
    """Counts sends in progress at once."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.now = 0
        self.most = 0

    async def send(self, message: Message) -> Receipt:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            for _ in range(5):
                await asyncio.sleep(0)
            return await super().send(message)
        finally:
            self.now -= 1


async def test_concurrency_bounds_the_notifications_driven_at_once(
    templates_dir: Path, clock: FakeClock
) -> None:
    sms = _Counting("sms")
    async with AsyncClient(
        store="memory://", channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        ox.concurrency = 3
        await ox.start_many(ONE_TEXT, [pax(i) for i in range(20)], context=CONTEXT)
        assert await ox.run_due() == 20
    assert len(sms.outbox) == 20
    assert sms.most == 3
    with pytest.raises(ConfigurationError, match="concurrency must be at least 1, not 0"):
        ox.concurrency = 0


async def test_the_claim_window_follows_the_channels_in_flight_slots(
    templates_dir: Path, clock: FakeClock
) -> None:
    """By default a worker claims twice its channels' in-flight slots (at most 500), so it
    never leases much more than it can send soon; ``concurrency`` set wins."""

    def client(**channels: InMemoryChannel) -> AsyncClient:
        return AsyncClient(
            store="memory://", channels=channels, templates=templates_dir, clock=clock
        )

    sms, email = _Counting("sms"), _Counting("email")
    sms.max_in_flight, email.max_in_flight = 2, 1
    async with client(sms=sms, email=email) as ox:
        assert ox.concurrency == 6
        limits: list[int] = []
        claim_due = ox.store.claim_due

        async def recorded(now: datetime, *, owner: str, lease: timedelta, limit: int) -> Claimed:
            limits.append(limit)
            return await claim_due(now, owner=owner, lease=lease, limit=limit)

        ox.store.claim_due = recorded  # type: ignore[method-assign]
        await ox.start_many(ONE_TEXT, [pax(i) for i in range(20)], context=CONTEXT)
        assert await ox.run_due() == 20
        assert max(limits) == 6
        assert sms.most == 2
        ox.concurrency = 9
        assert ox.concurrency == 9
    async with client(sms=InMemoryChannel(name="sms"), email=InMemoryChannel(name="email")) as ox:
        assert ox.concurrency == 400  # 100 slots each by default
    wide = {f"c{i}": InMemoryChannel("sms", name=f"c{i}") for i in range(4)}
    async with client(**wide) as ox:
        assert ox.concurrency == 500
    async with client() as ox:  # no channels (a webhooks-only process): still a window
        assert ox.concurrency == 200


# -- long-running commands in real processes -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes this test starts; killed (by their own handle) if still running at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)


def _spawn(
    spawned: list[subprocess.Popen[bytes]], tmp_path: Path, *args: str
) -> tuple[subprocess.Popen[bytes], Path]:
    err = tmp_path / f"process-{len(spawned)}.stderr"
    env = {**os.environ, "OUTREACH_SECRET_KEY": SECRET}
    with err.open("wb") as sink:
        process = subprocess.Popen(
            [str(OUTREACH), *args], env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
    spawned.append(process)
    return process, err


async def _exit_code(process: subprocess.Popen[bytes], err: Path) -> int:
    deadline = time.monotonic() + WAIT
    while process.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"did not exit:\n{err.read_text()}")
        await asyncio.sleep(0.02)
    return process.returncode


@pytest.mark.integration
async def test_worker_with_store_and_concurrency_runs_until_sigterm_then_exits_0(
    store_url: str, tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    process, err = _spawn(spawned, tmp_path, "worker", "--store", store_url, "--concurrency", "4")
    for _ in range(int(WAIT * 50)):
        if process.poll() is not None:
            raise AssertionError(err.read_text())
        if "worker running on" in err.read_text():
            break
        await asyncio.sleep(0.02)
    assert "4 notification(s) at once" in err.read_text()
    process.send_signal(signal.SIGTERM)
    assert await _exit_code(process, err) == 0, err.read_text()


def test_worker_refuses_a_concurrency_below_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["worker", "--concurrency", "0", "--store", f"sqlite:///{tmp_path / 'x.db'}"]
    )
    assert result.exit_code == 2
    assert "--concurrency" in result.output


def test_worker_refuses_store_and_app_together(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["worker", "--store", f"sqlite:///{tmp_path / 'x.db'}", "--app", "m:f"]
    )
    assert result.exit_code == 2
    assert "--app builds its own client" in result.output


@pytest.mark.integration
async def test_serve_no_worker_answers_webhooks_and_runs_no_escalations(
    store_url: str, tmp_path: Path, templates_dir: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    async with _client(store_url, SystemClock(), templates_dir) as ox:
        due = await ox.start(pax(1), ONE_TEXT, context=CONTEXT)
    port = _free_port()
    process, err = _spawn(
        spawned,
        tmp_path,
        "serve",
        "--no-worker",
        "--store",
        store_url,
        "--port",
        str(port),
        "--insecure-dev",
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(int(WAIT * 50)):
            if process.poll() is not None:
                raise AssertionError(err.read_text())
            try:
                response = await http.get("/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"serve never answered:\n{err.read_text()}")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "webhooks only" in err.read_text()
    process.send_signal(signal.SIGTERM)
    assert await _exit_code(process, err) == 0, err.read_text()
    async with _client(store_url, SystemClock(), templates_dir) as ox:
        assert (await ox.get(due.id)).status is Status.PENDING  # nobody ran it


@pytest.mark.parametrize("command", [["worker"], ["serve", "--no-worker"], ["db", "upgrade"]])
def test_a_store_url_of_no_known_kind_is_refused_by_every_command(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--store", "mysql://db/x"])
    assert result.exit_code == 2
    assert "unknown store URL 'mysql://db/x'" in result.output
