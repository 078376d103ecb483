"""The only loop: claim due notifications, let the engine decide, send, record, repeat.

Each claimed notification is driven until the engine has nothing more to send now: the
attempt is recorded as ``sending`` before the provider is called, the outcome is fed back to
the engine, and every write is version-checked. Writes from concurrent sends are grouped into
one transaction (group commit), which is what makes SQLite keep up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from outreach._clock import Clock
from outreach._engine import (
    CancelCall,
    Decision,
    Facts,
    Failure,
    Input,
    RecordOptOut,
    Send,
    SendFailed,
    Sent,
    StartFollowUp,
    State,
    Tick,
    decide,
)
from outreach._health import ChannelHealth
from outreach._hooks import Hooks
from outreach._messages import Messages
from outreach._models import Attempt, AttemptStatus, Event, EventKind, Medium, Notification
from outreach._ratelimit import Pacer
from outreach._redact import mask
from outreach._retry import GaveUp, with_retries
from outreach.channels import Channel
from outreach.exceptions import (
    ConcurrencyError,
    ConfigurationError,
    PermanentDeliveryError,
    RateLimited,
    StoreError,
    TemplateError,
    TransientDeliveryError,
)
from outreach.stores import Change, Store

log = logging.getLogger("outreach.runner")

_SAVE_TRIES = 5
_MEDIA = tuple(Medium)  # iterating the enum class itself is slow, and this runs per claim


def new_id() -> str:
    """A fresh notification id."""
    return uuid.uuid4().hex


def follow_up_of(parent: Notification, action: StartFollowUp, now: datetime) -> Notification:
    """The child notification a follow-up action asks for."""
    follow_up = action.follow_up
    deadline = follow_up.deadline
    return Notification(
        id=new_id(),
        key=f"{parent.key or parent.id}/{follow_up.label}",
        campaign=parent.campaign,
        metadata=parent.metadata,
        parent_id=parent.id,
        recipient=parent.recipient,
        plan=follow_up.as_plan(parent.plan),
        context=parent.context,
        created_at=now,
        updated_at=now,
        due_at=action.first_due,
        deadline_at=None if deadline is None else action.first_due + deadline,
    )


def _send_of(decision: Decision) -> Attempt | None:
    """The attempt a decision asks to send, if any (the engine asks for at most one)."""
    return next((a.attempt for a in decision.actions if isinstance(a, Send)), None)


@dataclass(frozen=True, slots=True)
class Paced:
    """An engine decision and, when it asks for a send, that attempt and the time pacing lets
    it start (the engine asks for at most one send)."""

    decision: Decision
    send: Attempt | None = None
    start_at: datetime | None = None


def change_for(decision: Decision, now: datetime, *, owner: str | None) -> Change:
    """What to store for a decision: the new state, the attempts it touched, its log,
    follow-ups and opt-outs."""
    children = [
        follow_up_of(decision.notification, action, now)
        for action in decision.actions
        if isinstance(action, StartFollowUp)
    ]
    events = [
        *decision.events,
        *(
            Event(
                at=now,
                notification_id=child.id,
                kind=EventKind.CREATED,
                data={"parent_id": child.parent_id},
            )
            for child in children
        ),
    ]
    opt_outs = [
        (action.medium, action.address)
        for action in decision.actions
        if isinstance(action, RecordOptOut)
    ]
    return Change(decision.notification, events, children, opt_outs, owner, decision.attempts)


_Answer = asyncio.Future[list[Notification | None]]  # per change, the stored state or None


class _GroupCommit:
    """Queues saves from concurrent tasks and writes each burst in one transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[Sequence[Change], _Answer]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def save(self, change: Change) -> Notification | None:
        [stored] = await self.save_many([change])
        return stored

    async def save_many(self, changes: Sequence[Change]) -> list[Notification | None]:
        """Save ``changes`` with whatever else is queued; per change, what ``Store.save`` says."""
        future: _Answer = asyncio.get_running_loop().create_future()
        self._pending.append((changes, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            changes = [change for group, _ in batch for change in group]
            try:
                results = await self._store.save(changes)
                if len(results) != len(changes):
                    raise StoreError(f"{len(changes)} changes saved, {len(results)} answers")
            except Exception as error:
                for _, future in batch:
                    if not future.done():  # its waiter may have been cancelled
                        future.set_exception(error)
                continue
            start = 0
            for group, future in batch:
                end = start + len(group)
                if not future.done():
                    future.set_result(results[start:end])
                start = end


@dataclass
class Runner:
    """Drives due notifications; shared by ``run_due``, ``run`` and the client's writes."""

    store: Store
    channels: Mapping[str, Channel]
    media: Mapping[str, Medium]
    messages: Messages
    clock: Clock
    hooks: Hooks
    owner: str
    pacer: Pacer
    lease: timedelta = timedelta(minutes=5)
    batch_size: int = 500
    max_in_flight: int = 100
    health: ChannelHealth = field(default_factory=ChannelHealth)
    """Channels switched off by a configuration error, and when each is probed again."""

    def __post_init__(self) -> None:
        self._commits = _GroupCommit(self.store)
        self._in_flight = {
            name: asyncio.Semaphore(c.max_in_flight or self.max_in_flight)
            for name, c in self.channels.items()
        }
        self._channel_errors: dict[str, tuple[str, Exception]] = {}  # attempt id -> hook args

    def facts(self, opted_out: frozenset[Medium] = frozenset()) -> Facts:
        unavailable = self.health.unavailable(self.clock.now())
        return Facts(media=self.media, unavailable=unavailable, opted_out=opted_out)

    async def opted_out(
        self, notifications: Sequence[Notification]
    ) -> dict[str, frozenset[Medium]]:
        """Per notification id, the media whose address its recipient has opted out of."""
        wanted = {
            (medium, address)
            for n in notifications
            for medium in _MEDIA
            if (address := n.recipient.address(medium)) is not None
        }
        suppressed = await self.store.opted_out(sorted(wanted)) if wanted else set()
        return {
            n.id: frozenset(
                medium for medium in _MEDIA if (medium, n.recipient.address(medium)) in suppressed
            )
            for n in notifications
        }

    async def run_due(self) -> int:
        """Run everything due now; return how many claims were handled.

        Each claim is decided and stored as one batch; each notification then carries on in
        a task of its own (hooks, then sends until the engine has nothing more to send now).
        Claims are topped up while earlier sends are still going (a rolling window of about
        ``batch_size`` notifications), so no batch waits for the slowest send of the one before.
        """
        handled = 0
        running: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []
        refill_below = max(self.batch_size // 2, 1)
        drained = False  # the last claim found nothing due
        while True:
            if not drained and len(running) < refill_below and not failures:
                batch, opted_out = await self.claim(self.batch_size - len(running))
                drained = not batch
                handled += len(batch)
                then = await self.begin(batch, opted_out, failures)
                running.update(asyncio.create_task(work) for work in then)
            if not running:
                if failures:
                    # One notification's failure never stops the others; report it at the end.
                    raise failures[0]
                if drained:
                    return handled
                continue
            until = asyncio.ALL_COMPLETED if drained or failures else asyncio.FIRST_COMPLETED
            done, running = await asyncio.wait(running, return_when=until)
            for task in done:
                if task.exception() is not None:
                    log.error("a notification could not be driven", exc_info=task.exception())
                    failures.append(task.exception())  # type: ignore[arg-type]
            if drained:
                drained = False  # what just ran may have made more work due: look again

    async def claim(self, limit: int) -> tuple[list[Notification], dict[str, frozenset[Medium]]]:
        """Lease up to ``limit`` due notifications, with their recipients' opt-outs."""
        batch = await self.store.claim_due(
            self.clock.now(), owner=self.owner, lease=self.lease, limit=limit
        )
        return batch, await self.opted_out(batch) if batch else {}

    async def begin(
        self,
        batch: Sequence[Notification],
        opted_out: Mapping[str, frozenset[Medium]],
        failures: list[BaseException],
    ) -> list[Coroutine[Any, Any, None]]:
        """Decide what is due for a claimed batch and store the decisions together (one group
        commit); return, per notification, what is left to do (:meth:`carry_on`). Failures
        are logged and added to ``failures``."""
        now = self.clock.now()
        decided, changes = [], []
        for notification in batch:
            try:
                paced = self.decide(notification, Tick(), opted_out[notification.id], now)
                changes.append(self.change(paced, now))
            except Exception as error:
                log.error("notification %s could not be driven", notification.id, exc_info=error)
                failures.append(error)
                continue
            decided.append((notification, paced))
        if not changes:
            return []
        try:
            saved = await self._commits.save_many(changes)
        except Exception as error:
            log.error("a claimed batch could not be stored", exc_info=error)
            failures.append(error)
            return []
        return [
            self.carry_on(notification, paced, stored, opted_out[notification.id])
            for (notification, paced), stored in zip(decided, saved, strict=True)
        ]

    async def carry_on(
        self,
        notification: Notification,
        paced: Paced,
        stored: Notification | None,
        opted_out: frozenset[Medium],
    ) -> None:
        """After a batch's commit, one notification on its own: its hooks, then the sends its
        decision asked for. A write that lost a race is decided again on a fresh copy."""
        if stored is None:  # another writer got there first
            fresh = await self.store.get(notification.id)
            if fresh is None:
                return
            paced, stored = await self.apply(fresh, Tick(), opted_out)
        else:
            await self.after_commit(stored, paced.decision)
        if paced.send is not None:
            await self.follow(stored, paced, opted_out)

    async def follow(
        self, notification: Notification, paced: Paced, opted_out: frozenset[Medium]
    ) -> None:
        """Send what ``paced`` asks for, then keep going while the engine asks for sends."""
        while paced.send is not None:
            event = await self.send(notification, paced.send, paced.start_at)
            paced, notification = await self.apply(notification, event, opted_out)

    async def apply(
        self,
        notification: Notification,
        event: Input,
        opted_out: frozenset[Medium],
        *,
        leased: bool = True,
    ) -> tuple[Paced, Notification]:
        """Decide and store, re-deciding on a fresh copy when another writer got there first.

        When the runner holds the lease (``leased``) it is released unless a send follows;
        the client's own writes (acknowledge, cancel) leave leases alone.
        """
        for _ in range(_SAVE_TRIES):
            now = self.clock.now()
            paced = self.decide(notification, event, opted_out, now)
            stored = await self._commits.save(self.change(paced, now, leased=leased))
            if stored is not None:
                await self.after_commit(stored, paced.decision)
                return paced, stored
            fresh = await self.store.get(notification.id)
            if fresh is None:
                break
            notification = fresh
        raise ConcurrencyError(f"notification {notification.id}: too many concurrent writers")

    def change(self, paced: Paced, now: datetime, *, leased: bool = True) -> Change:
        """What to store for a decision, releasing the runner's lease (when it holds one)
        unless a send follows."""
        release = leased and paced.send is None
        return change_for(paced.decision, now, owner=self.owner if release else None)

    def decide(
        self, notification: Notification, event: Input, opted_out: frozenset[Medium], now: datetime
    ) -> Paced:
        """The engine's decision, with a send held back when pacing says it is not yet time."""
        state = State(notification, self.facts(opted_out))
        decision = decide(state, event, now)
        attempt = _send_of(decision)
        if attempt is None:
            return Paced(decision)
        assert attempt.medium is not None
        assert attempt.address is not None
        start = self.pacer.admit(attempt.channel, attempt.medium, attempt.address, now)
        if start - now <= self.pacer.horizon:
            return Paced(decision, attempt, start)
        # Too far off to wait in process: decide again, knowing the channel is held till then
        # (the event's own effects stay; only the send becomes a deferral).
        held = replace(state.facts, held={attempt.channel: start})
        decision = decide(State(notification, held), event, now)
        return Paced(decision, _send_of(decision))

    async def after_commit(self, notification: Notification, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, CancelCall):
                await self.cancel_call(action.attempt)
        await self.hooks.after_commit(notification, decision.events)
        for event in decision.events:
            reported = self._channel_errors.pop(event.attempt_id or "", None)
            if reported is not None:
                await self.hooks.channel_error(*reported)
        for event in decision.events:
            if event.kind in (
                EventKind.ACKNOWLEDGED,
                EventKind.EXHAUSTED,
                EventKind.EXPIRED,
                EventKind.FAILED,
                EventKind.CANCELLED,
            ):
                log.info("notification %s %s", notification.id, event.kind.value)

    async def cancel_call(self, attempt: Attempt) -> None:
        channel = self.channels.get(attempt.channel)
        if channel is None or attempt.provider_id is None:
            return
        try:
            await channel.cancel(attempt.provider_id)
        except Exception:
            log.warning(
                "could not hang up call %s of attempt %s",
                attempt.provider_id,
                attempt.id,
                exc_info=True,
            )

    async def send(
        self, notification: Notification, attempt: Attempt, start_at: datetime | None = None
    ) -> Sent | SendFailed:
        """Render and send one attempt (not before ``start_at``, the time pacing gave it) with
        its retry policy; translate the outcome."""
        try:
            message = self.messages.render(notification, attempt)
        except TemplateError as error:
            log.error("attempt %s: %s", attempt.id, error)
            return SendFailed(attempt.id, Failure.PERMANENT, str(error), tries=0)
        channel = self.channels[attempt.channel]
        step = notification.plan.steps[attempt.step]
        waited = start_at is not None and start_at > self.clock.now()
        if waited:
            assert start_at is not None
            await self.clock.sleep(start_at - self.clock.now())
        if message.segments and message.segments > 1:
            self.pacer.charge_extra(attempt.channel, message.segments - 1)
        slots = self._in_flight[attempt.channel]
        tries_before = sum(
            a.tries
            for a in notification.attempts
            if (a.pass_, a.step) == (attempt.pass_, attempt.step) and a.id != attempt.id
        )
        log.debug("attempt %s: %s to %s", attempt.id, attempt.channel, mask(attempt.address))
        try:
            async with slots:
                if (waited or slots.locked()) and await self.withdrawn(attempt):
                    return SendFailed(
                        attempt.id,
                        Failure.WITHDRAWN,
                        "not sent: withdrawn while it waited",
                        tries=0,
                    )
                receipt, tries = await with_retries(
                    lambda: channel.send(message),
                    step.retry or notification.plan.retry,
                    self.clock,
                    tries_before=tries_before,
                )
        except GaveUp as gave_up:
            return await self.failure(attempt, gave_up)
        await self.succeeded(attempt.channel)
        return Sent(attempt.id, receipt.provider_id, receipt.status, tries, receipt.sender)

    async def withdrawn(self, attempt: Attempt) -> bool:
        """Whether, after waiting for pacing or a free slot, the send is no longer wanted
        (acknowledged, cancelled or opted out meanwhile)."""
        fresh = await self.store.get(attempt.notification_id)
        if fresh is None or fresh.status.is_terminal:
            return True
        current = fresh.attempt(attempt.id)
        opted_out = await self.opted_out([fresh])
        return (
            current is None
            or current.status is not AttemptStatus.SENDING
            or (attempt.medium in opted_out[fresh.id])
        )

    async def succeeded(self, channel: str) -> None:
        """A send on ``channel`` went through: if a configuration error had switched it off,
        it is back on (logged, ``on_channel_restored`` called)."""
        if self.health.succeeded(channel):
            log.warning("channel %r is back on: a send went through", channel)
            await self.hooks.channel_restored(channel)

    async def failure(self, attempt: Attempt, gave_up: GaveUp) -> SendFailed:
        """Classify a send that gave up; switch a misconfigured channel off."""
        error, tries = gave_up.error, gave_up.tries
        retry_at = None if gave_up.retry_in is None else self.clock.now() + gave_up.retry_in
        if attempt.medium is not None and attempt.address is not None:
            self.pacer.refund(attempt.medium, attempt.address)  # the send reached no one
        text = f"{type(error).__name__}: {error}"
        if isinstance(error, ConfigurationError):
            off_for = self.health.failed(attempt.channel, str(error), self.clock.now())
            if off_for is not None:  # concurrent sends report a switch-off once
                log.error(
                    "channel %r is switched off, to be tried again in %s: %s",
                    attempt.channel,
                    off_for,
                    error,
                )
                self._channel_errors[attempt.id] = (attempt.channel, error)  # fired after commit
            return SendFailed(attempt.id, Failure.UNAVAILABLE, text, tries=tries)
        if isinstance(error, PermanentDeliveryError):
            failure = Failure.OPTED_OUT if error.opt_out else Failure.PERMANENT
            return SendFailed(attempt.id, failure, text, tries=tries)
        if isinstance(error, RateLimited):
            return SendFailed(attempt.id, Failure.RATE_LIMITED, text, retry_at, tries)
        if isinstance(error, TransientDeliveryError):
            return SendFailed(attempt.id, Failure.TRANSIENT, text, retry_at, tries)
        log.error("channel %r raised outside the error tree", attempt.channel, exc_info=error)
        return SendFailed(attempt.id, Failure.PERMANENT, text, tries=tries)
