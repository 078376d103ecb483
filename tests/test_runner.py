"""The runner: retries through the clock, stored re-attempts, channels switched off, opt-outs."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from outreach import AsyncClient, AttemptStatus, Hooks, Plan, Recipient, RetryPolicy, Status, Step
from outreach.channels import Message, Receipt
from outreach.exceptions import ConfigurationError, PermanentDeliveryError, RateLimited
from outreach.testing import FakeClock, InMemoryChannel

PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
CONTEXT = {"flight": "9K 1042"}


async def test_short_transient_failures_retry_in_process_through_the_clock(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    channels["sms"].fail_next(2)
    start = clock.now()
    n = await client.start(PAX, plan, context=CONTEXT)
    await client.run_due()
    [attempt] = (await client.get(n.id)).attempts
    assert attempt.status is AttemptStatus.SENT
    assert attempt.tries == 3
    assert len(channels["sms"].outbox) == 1
    waited = clock.now() - start
    assert timedelta(seconds=3) <= waited <= timedelta(seconds=5)  # 1s + 2s backoff, + jitter
    assert attempt.sent_at == clock.now()  # the step's wait runs from here


async def test_long_retry_after_becomes_a_stored_reattempt(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    channels["sms"].fail_next(error=RateLimited("429", retry_after=timedelta(minutes=2)))
    n = await client.start(PAX, plan, context=CONTEXT)
    await client.run_due()
    n = await client.get(n.id)
    [first] = n.attempts
    assert first.status is AttemptStatus.FAILED
    assert first.retry_at == clock.now() + timedelta(minutes=2)
    assert n.due_at == first.retry_at
    clock.advance("2m")
    await client.run_due()
    n = await client.get(n.id)
    assert [(a.step, a.reattempt, a.status) for a in n.attempts] == [
        (0, 0, AttemptStatus.FAILED),
        (0, 1, AttemptStatus.SENT),
    ]
    assert len(channels["sms"].outbox) == 1


async def test_spent_retry_policy_fails_the_attempt_and_escalates(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    plan = Plan(
        name="p",
        steps=[
            Step(channel="sms", template="flight_cancelled"),
            Step(channel="email", template="flight_cancelled"),
        ],
        retry=RetryPolicy(attempts=2, initial="1s", jitter="0s"),
    )
    channels["sms"].fail_next(5)
    async with AsyncClient(
        store="memory://", channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        n = await ox.start(PAX, plan, context=CONTEXT)
        await ox.run_due()
        n = await ox.get(n.id)
    assert [(a.channel, a.status, a.tries) for a in n.attempts] == [
        ("sms", AttemptStatus.FAILED, 2),
        ("email", AttemptStatus.SENT, 1),
    ]


async def test_bad_credentials_switch_the_channel_off_but_not_the_others(
    clock: FakeClock, channels: dict[str, InMemoryChannel], plan: Plan, templates_dir: Path
) -> None:
    errors: list[str] = []
    hooks = Hooks(on_channel_error=lambda name, error: errors.append(name))
    channels["sms"].fail_next(error=ConfigurationError("401: check OUTREACH_TWILIO_AUTH_TOKEN"))
    async with AsyncClient(
        store="memory://", channels=channels, templates=templates_dir, clock=clock, hooks=hooks
    ) as ox:
        first = await ox.start(PAX, plan, context=CONTEXT, key="a")
        await ox.run_due()
        second = await ox.start(PAX.model_copy(update={"id": "b"}), plan, context=CONTEXT, key="b")
        await ox.run_due()
        for n in (await ox.get(first.id), await ox.get(second.id)):
            sms, email = n.attempts
            assert sms.status is AttemptStatus.SKIPPED
            assert "OUTREACH_TWILIO_AUTH_TOKEN" in (sms.error or "")
            assert email.status is AttemptStatus.SENT
    assert errors == ["sms"]
    assert channels["sms"].outbox == []


class CountingChannel(InMemoryChannel):
    """Counts every send it is asked for, failed or not."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.asked = 0

    async def send(self, message: Message) -> Receipt:
        self.asked += 1
        return await super().send(message)


async def test_a_channel_switched_off_by_bad_credentials_is_probed_again_with_backoff(
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    plan: Plan,
    templates_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Off for 1 minute, then one more try; still failing: off for 2 minutes; the first
    success switches it back on. ``on_channel_error`` fires once per switch-off."""
    sms = CountingChannel("sms")
    errors: list[tuple[str, str]] = []
    restored: list[str] = []
    hooks = Hooks(
        on_channel_error=lambda name, error: errors.append((name, str(error))),
        on_channel_restored=restored.append,
    )
    sms.fail_next(error=ConfigurationError("401: check OUTREACH_TWILIO_AUTH_TOKEN"))
    async with AsyncClient(
        store="memory://",
        channels={**channels, "sms": sms},
        templates=templates_dir,
        clock=clock,
        hooks=hooks,
    ) as ox:

        async def notify(key: str) -> AttemptStatus:
            """Start a notification; the status of its SMS attempt after ``run_due()``."""
            recipient = PAX.model_copy(update={"id": key})
            n = await ox.start(recipient, plan, context=CONTEXT, key=key)
            await ox.run_due()
            return (await ox.get(n.id)).attempts[0].status

        assert await notify("a") is AttemptStatus.SKIPPED  # the 401: switched off
        assert (sms.asked, errors) == (1, [("sms", "401: check OUTREACH_TWILIO_AUTH_TOKEN")])
        clock.advance("59s")
        assert await notify("b") is AttemptStatus.SKIPPED  # off: not even tried
        assert sms.asked == 1

        clock.advance("1s")
        sms.fail_next(error=ConfigurationError("403: still refused"))
        assert await notify("c") is AttemptStatus.SKIPPED  # the probe, refused again
        assert sms.asked == 2
        assert [name for name, _ in errors] == ["sms", "sms"]
        clock.advance("1m59s")
        assert await notify("d") is AttemptStatus.SKIPPED  # off for 2 minutes this time
        assert sms.asked == 2

        clock.advance("1s")
        with caplog.at_level("INFO", logger="outreach.runner"):
            assert await notify("e") is AttemptStatus.SENT  # the probe goes through
        assert restored == ["sms"]
        assert any("'sms' is back on" in r.getMessage() for r in caplog.records)
        assert await notify("f") is AttemptStatus.SENT  # and everything after it
        assert await notify("g") is AttemptStatus.SENT
        assert sms.asked == 5
        assert len(sms.outbox) == 3
    assert [name for name, _ in errors] == ["sms", "sms"]
    assert restored == ["sms"]


async def test_provider_opt_out_is_remembered_for_every_later_notification(
    client: AsyncClient, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    channels["sms"].fail_next(error=PermanentDeliveryError("21610", opt_out=True))
    await client.start(PAX, plan, context=CONTEXT, key="a")
    await client.run_due()
    later = await client.start(PAX, plan, context=CONTEXT, key="b")
    await client.run_due()
    sms = (await client.get(later.id)).attempts[0]
    assert sms.status is AttemptStatus.SKIPPED
    assert "opted out" in (sms.error or "")
    assert channels["sms"].outbox == []
    await client.unsuppress("sms", PAX.phone or "")
    third = await client.start(PAX, plan, context=CONTEXT, key="c")
    await client.run_due()
    assert (await client.get(third.id)).attempts[0].status is AttemptStatus.SENT


async def test_render_failure_at_send_time_is_a_permanent_failure_of_that_step(
    client: AsyncClient, plan: Plan, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    n = await client.start(PAX, plan, context=CONTEXT)
    (templates_dir / "flight_cancelled" / "sms.txt").write_text("{{ gate }}")
    client.templates = type(client.templates)(templates_dir)  # type: ignore[misc]
    client._runner.messages.templates = client.templates
    await client.run_due()
    sms, email = (await client.get(n.id)).attempts
    assert sms.status is AttemptStatus.FAILED
    assert "gate" in (sms.error or "")
    assert email.status is AttemptStatus.SENT


async def test_run_sleeps_until_the_next_due_time_and_wakes_on_new_work(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    worker = asyncio.create_task(client.run())
    try:
        n = await client.start(PAX, plan, context=CONTEXT)
        await _until(lambda: len(channels["sms"].outbox) == 1)
        clock.advance("15m")
        await _until(lambda: len(channels["email"].outbox) == 1)
        await client.acknowledge(n.id, choice="1")
        clock.advance("3h")
        await asyncio.sleep(0.05)
        assert channels["voice"].outbox == []
        assert (await client.get(n.id)).status is Status.ACKNOWLEDGED
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker


async def _until(condition: object, *, polls: int = 200) -> None:
    for _ in range(polls):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


async def _run_paced(ox: AsyncClient, clock: FakeClock) -> None:
    """Run what is due, then what pacing deferred in the store, as ``run()`` would."""
    await ox.run_due()
    while (due := await ox.store.next_due()) is not None and due - clock.now() < timedelta(
        minutes=1
    ):
        clock.set(max(due, clock.now()))
        await ox.run_due()


async def test_pacing_spreads_sends_at_the_channel_rate(
    clock: FakeClock, templates_dir: Path
) -> None:
    """At 10 msg/s, 200 texts take 20 s of (fake) time, and none is dropped."""
    sms = InMemoryChannel(name="sms", rate=10)
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled", wait="1h")])
    start = clock.now()
    async with AsyncClient(
        store="memory://", channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        people = [Recipient(id=f"p{i}", phone=f"+1617555{i:04d}") for i in range(200)]
        await ox.start_many(plan, people, context=CONTEXT)
        await _run_paced(ox, clock)
        elapsed = (clock.now() - start).total_seconds()
        assert len(sms.outbox) == 200
        assert 19.0 <= elapsed <= 21.0
        sent = sorted(a.sent_at for n in await ox.list(limit=500) for a in n.attempts if a.sent_at)
    assert len(sent) == 200


async def test_pacing_beyond_the_horizon_defers_the_step_without_recording_an_attempt(
    clock: FakeClock, templates_dir: Path
) -> None:
    sms = InMemoryChannel(name="sms", rate=1)
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled", wait="1h")])
    async with AsyncClient(
        store="memory://", channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        people = [Recipient(id=f"p{i}", phone=f"+1617555{i:04d}") for i in range(100)]
        await ox.start_many(plan, people, context=CONTEXT)
        await ox.run_due()
        notifications = await ox.list(limit=500)
        waiting = [n for n in notifications if not n.attempts]
        assert len(sms.outbox) + len(waiting) == 100
        assert 9 <= len(sms.outbox) <= 12  # one a second for the 10 s horizon
        assert all(n.due_at is not None and n.due_at > clock.now() for n in waiting)
        await _run_paced(ox, clock)
        assert len(sms.outbox) == 100


async def test_a_backlog_deferred_together_comes_back_due_in_line(
    clock: FakeClock, templates_dir: Path
) -> None:
    """100 texts at 1 a second: the ones beyond the horizon are given their places in line,
    one interval apart, so each comes back due about when it can go (not all at the horizon,
    to be deferred again and again)."""
    sms = InMemoryChannel(name="sms", rate=1)
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled", wait="1h")])
    async with AsyncClient(
        store="memory://", channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        people = [Recipient(id=f"p{i}", phone=f"+1617555{i:04d}") for i in range(100)]
        await ox.start_many(plan, people, context=CONTEXT)
        await ox.run_due()
        waiting = [n for n in await ox.list(limit=500) if not n.attempts]
        dues = sorted(n.due_at for n in waiting if n.due_at is not None)
        assert len(dues) == len(waiting) == 100 - len(sms.outbox)
        gaps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(dues)}
        assert gaps == {1.0}
        claims = 0
        claim_due = ox.store.claim_due

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal claims
            claimed = await claim_due(*args, **kwargs)
            claims += len(claimed)
            return claimed

        ox.store.claim_due = counted  # type: ignore[method-assign]
        await _run_paced(ox, clock)
        assert len(sms.outbox) == 100
        assert claims <= 2 * len(waiting)  # each deferred text claimed about once more


async def test_one_person_is_not_texted_more_than_three_times_an_hour(
    client: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel]
) -> None:
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled", wait="1h")])
    for key in "abcde":
        await client.start(PAX, plan, context=CONTEXT, key=key)
    await client.run_due()
    assert len(channels["sms"].outbox) == 3
    clock.advance("59m")
    await client.run_due()
    assert len(channels["sms"].outbox) == 3
    clock.advance("1m")
    await client.run_due()
    assert len(channels["sms"].outbox) == 4  # after a burst of three, one an hour
    clock.advance("59m")
    await client.run_due()
    assert len(channels["sms"].outbox) == 4
    clock.advance("1m")
    await client.run_due()
    assert len(channels["sms"].outbox) == 5


async def test_a_paced_send_keeps_what_the_previous_send_reported(
    clock: FakeClock, templates_dir: Path
) -> None:
    """A failed SMS followed by an email held back by pacing: the failure stays recorded."""
    sms = InMemoryChannel(name="sms")
    email = InMemoryChannel(name="email", rate=1 / 3600)  # one an hour
    plan = Plan(
        name="p",
        steps=[
            Step(channel="sms", template="flight_cancelled"),
            Step(channel="email", template="flight_cancelled"),
        ],
    )
    async with AsyncClient(
        store="memory://",
        channels={"sms": sms, "email": email},
        templates=templates_dir,
        clock=clock,
    ) as ox:
        first = await ox.start(PAX, plan, context=CONTEXT, key="a")
        await ox.run_due()  # uses the hour's email slot
        sms.fail_next(error=PermanentDeliveryError("21211 invalid number"))
        second = await ox.start(PAX.model_copy(update={"id": "b"}), plan, context=CONTEXT, key="b")
        clock.advance("16m")
        await ox.run_due()
        n = await ox.get(second.id)
        [failed] = n.attempts
        assert failed.status is AttemptStatus.FAILED
        assert "21211" in (failed.error or "")
        assert n.due_at is not None
        assert n.due_at > clock.now()  # the email waits for its slot
        assert len(email.outbox) == 1
        assert (await ox.get(first.id)).attempts[1].status is AttemptStatus.SENT


async def test_a_send_waiting_for_its_slot_is_dropped_when_the_notification_is_cancelled(
    clock: FakeClock, templates_dir: Path
) -> None:
    started: list[str] = []

    class Slow(InMemoryChannel):
        async def send(self, message: Message) -> Receipt:
            started.append(message.notification_id)
            await asyncio.sleep(0.05)
            return await super().send(message)

    sms = Slow(name="sms", max_in_flight=1)
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
    async with AsyncClient(
        store="memory://", channels={"sms": sms}, templates=templates_dir, clock=clock
    ) as ox:
        first = await ox.start(PAX, plan, context=CONTEXT, key="a")
        second = await ox.start(PAX.model_copy(update={"id": "b"}), plan, context=CONTEXT, key="b")
        running = asyncio.create_task(ox.run_due())
        await asyncio.sleep(0.02)  # one send is in flight, the other waits for the slot
        [sending] = started
        waiting = second if sending == first.id else first
        await ox.cancel(waiting.id)
        await running
        assert [m.notification_id for m in sms.outbox] == [sending]
        withdrawn = await ox.get(waiting.id)
        assert withdrawn.status is Status.CANCELLED
        assert withdrawn.attempts == ()  # it never became `sending`: nothing to reconcile


async def test_group_commit_survives_a_cancelled_waiter(client: AsyncClient, plan: Plan) -> None:
    from outreach._runner import _GroupCommit
    from outreach.stores import Change

    n = await client.start(PAX, plan, context=CONTEXT)
    other = await client.start(PAX.model_copy(update={"id": "b"}), plan, context=CONTEXT)
    commits = _GroupCommit(client.store)
    cancelled = asyncio.create_task(commits.save(Change(n)))
    kept = asyncio.create_task(commits.save(Change(other)))
    await asyncio.sleep(0)
    cancelled.cancel()
    saved = await asyncio.wait_for(kept, 2)
    assert saved is not None
    assert saved.version == other.version + 1


async def test_a_rate_limit_reset_instant_is_honoured_exactly(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    """SendGrid's X-RateLimit-Reset is an instant: the step is re-attempted right then."""
    reset = clock.now() + timedelta(seconds=90)
    channels["sms"].fail_next(error=RateLimited("429", retry_at=reset))
    n = await client.start(PAX, plan, context=CONTEXT)
    await client.run_due()
    assert (await client.get(n.id)).due_at == reset
    clock.set(reset)
    await client.run_due()
    assert len(channels["sms"].outbox) == 1


async def test_a_short_retry_after_waits_that_long_not_the_backoff(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    start = clock.now()
    channels["sms"].fail_next(error=RateLimited("429", retry_after=timedelta(seconds=2)))
    n = await client.start(PAX, plan, context=CONTEXT)
    await client.run_due()
    assert (await client.get(n.id)).due_at == start + timedelta(seconds=2)
    clock.advance("2s")
    await client.run_due()
    [_, sent] = (await client.get(n.id)).attempts
    assert sent.sent_at == start + timedelta(seconds=2)


@pytest.mark.parametrize("answer", ["ack", "reply"])
async def test_a_write_landing_between_claim_and_commit_wins(
    client: AsyncClient,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
) -> None:
    """Another process writes to one notification of a claimed batch just before the batch's
    decisions are stored: that write loses the version check and the notification is decided
    again on the fresh copy. Acknowledged: nothing is sent to it. A reply that is not an
    answer: its SMS goes out once. The other notification is unaffected."""
    from outreach._engine import Ack, Facts, Reply, State, decide
    from outreach.stores import Change

    raced = await client.start(PAX, plan, context=CONTEXT, key="a")
    other = await client.start(PAX.model_copy(update={"id": "b"}), plan, context=CONTEXT, key="b")
    store_save = client.store.save

    async def save(changes: list[Change]) -> list[object]:
        if len(changes) == 2:  # the claimed batch, about to be stored
            fresh = await client.store.get(raced.id)
            assert fresh is not None
            event = Ack(via="api") if answer == "ack" else Reply(via="sms", text="who is this?")
            written = decide(State(fresh, Facts(media={})), event, clock.now())
            await store_save([Change(written.notification, written.events)])
        return await store_save(changes)

    monkeypatch.setattr(client.store, "save", save)
    await client.run_due()
    sent_to = sorted(m.notification_id for m in channels["sms"].outbox)
    if answer == "ack":
        assert sent_to == [other.id]
        assert (await client.get(raced.id)).status is Status.ACKNOWLEDGED
    else:
        assert sent_to == sorted([raced.id, other.id])
        assert len((await client.get(raced.id)).attempts) == 1
    assert (await client.get(other.id)).status is Status.ACTIVE


async def test_a_store_failing_as_a_batch_is_checked_for_taken_pages_fails_that_round_only(
    client: AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The round reports the store's error; the batch is sent by a later round once its
    lease lapses, and nothing is lost."""
    from outreach import _runner
    from outreach.exceptions import StoreError

    async def unreachable(*_: object) -> dict[str, str]:
        raise StoreError("the store went away")

    n = await client.start(PAX, plan, context=CONTEXT)
    with monkeypatch.context() as patched:
        patched.setattr(_runner, "settled", unreachable)
        with pytest.raises(StoreError, match="the store went away"):
            await client.run_due()
    assert channels["sms"].outbox == []
    clock.advance(timedelta(seconds=31))
    await client.run_due()
    assert [m.notification_id for m in channels["sms"].outbox] == [n.id]
