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
    Due,
    Facts,
    Failure,
    HandOver,
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
from outreach._models import Attempt, Event, EventKind, Medium, Notification
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


def _due_of(decision: Decision) -> Attempt | None:
    """The attempt a decision says is due, if any (the engine names at most one)."""
    return next((a.attempt for a in decision.actions if isinstance(a, Due)), None)


def _send_of(decision: Decision) -> Attempt | None:
    """The attempt a decision recorded as ``sending`` (handed over), if any."""
    return next((a.attempt for a in decision.actions if isinstance(a, Send)), None)


def _then(first: Decision, then: Decision) -> Decision:
    """``then``, decided from ``first``'s notification, with ``first``'s actions (but the
    ``Due`` that ``then`` answers), log and attempts: the two are stored as one change."""
    attempts = {a.id: a for a in (*first.attempts, *then.attempts)}
    kept = tuple(action for action in first.actions if not isinstance(action, Due))
    return Decision(
        then.notification,
        (*kept, *then.actions),
        (*first.events, *then.events),
        tuple(attempts.values()),
    )


@dataclass(frozen=True, slots=True)
class Paced:
    """An engine decision and, when it names an attempt due, that attempt and the time pacing
    lets it start."""

    decision: Decision
    due: Attempt | None = None
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
    drain_timeout: timedelta = timedelta(seconds=10)
    health: ChannelHealth = field(default_factory=ChannelHealth)
    """Channels switched off by a configuration error, and when each is probed again."""

    def __post_init__(self) -> None:
        self._commits = _GroupCommit(self.store)
        self._in_flight = {
            name: asyncio.Semaphore(c.max_in_flight or self.max_in_flight)
            for name, c in self.channels.items()
        }
        self._channel_errors: dict[str, tuple[str, Exception]] = {}  # attempt id -> hook args
        self._handed_over: set[str] = set()  # handing over, or outcome not yet stored
        self._stopping = False

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

        Each claim is decided as one batch: what needs no send is stored together (one group
        commit); each notification that has an attempt due carries on in a task of its own
        (:meth:`drive`). Claims are topped up while earlier sends are still going (a rolling
        window of about ``batch_size`` notifications), so no batch waits for the slowest send
        of the one before. Cancelled, it stops as :meth:`stop` says.
        """
        self._stopping = False
        handled = 0
        running: dict[asyncio.Task[None], str] = {}  # task -> the notification it drives
        claimed: list[str] = []  # a batch being decided, not yet running
        failures: list[BaseException] = []
        refill_below = max(self.batch_size // 2, 1)
        drained = False  # the last claim found nothing due
        try:
            while True:
                if not drained and len(running) < refill_below and not failures:
                    batch, opted_out = await self.claim(self.batch_size - len(running))
                    claimed = [n.id for n in batch]
                    drained = not batch
                    handled += len(batch)
                    for notification_id, work in await self.begin(batch, opted_out, failures):
                        running[asyncio.create_task(work)] = notification_id
                    claimed = []
                if not running:
                    if failures:
                        # One notification's failure never stops the others; report it at the end.
                        raise failures[0]
                    if drained:
                        return handled
                    continue
                until = asyncio.ALL_COMPLETED if drained or failures else asyncio.FIRST_COMPLETED
                done, _ = await asyncio.wait(running, return_when=until)
                for task in done:
                    del running[task]
                    if task.exception() is not None:
                        log.error("a notification could not be driven", exc_info=task.exception())
                        failures.append(task.exception())  # type: ignore[arg-type]
                if drained:
                    drained = False  # what just ran may have made more work due: look again
        except asyncio.CancelledError:
            await self.stop(running, claimed)
            raise

    async def stop(self, running: Mapping[asyncio.Task[None], str], claimed: Sequence[str]) -> None:
        """Stop claiming; let requests already handed over finish (for up to
        ``drain_timeout``, in real time: they are real requests); cancel everything else and
        give its lease back, so another runner takes it at once. No task outlives this."""
        self._stopping = True
        in_flight = [task for task, nid in running.items() if nid in self._handed_over]
        for task in running:
            if task not in in_flight:
                task.cancel()
        if in_flight:
            _, late = await asyncio.wait(in_flight, timeout=self.drain_timeout.total_seconds())
            for task in late:
                task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        handed_back = await self.store.release([*running.values(), *claimed], owner=self.owner)
        log.info("stopped: %d notification(s) handed back for another runner", handed_back)

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
    ) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """Decide what is due for a claimed batch; store the decisions that send nothing
        together (one group commit). Return, per notification, what is left to do: its hooks,
        or the sends it has due (:meth:`drive`). Failures are logged and added to
        ``failures``."""
        now = self.clock.now()
        sending: list[tuple[Notification, Paced]] = []
        quiet: list[tuple[Notification, Paced]] = []
        for notification in batch:
            try:
                paced = self.decide(notification, Tick(), opted_out[notification.id], now)
            except Exception as error:
                log.error("notification %s could not be driven", notification.id, exc_info=error)
                failures.append(error)
                continue
            (quiet if paced.due is None else sending).append((notification, paced))
        work = [(n.id, self.drive(n, paced, opted_out[n.id], stored=False)) for n, paced in sending]
        if not quiet:
            return work
        try:
            saved = await self._commits.save_many([self.change(p, now) for _, p in quiet])
        except Exception as error:
            log.error("a claimed batch could not be stored", exc_info=error)
            failures.append(error)
            return work
        return [
            *work,
            *(
                (n.id, self.carry_on(n, paced, stored, opted_out[n.id]))
                for (n, paced), stored in zip(quiet, saved, strict=True)
            ),
        ]

    async def carry_on(
        self,
        notification: Notification,
        paced: Paced,
        stored: Notification | None,
        opted_out: frozenset[Medium],
    ) -> None:
        """After a batch's commit, one notification on its own: its hooks. A write that lost
        a race is decided again on a fresh copy."""
        if stored is not None:
            await self.after_commit(stored, paced.decision)
            return
        fresh = await self.store.get(notification.id)  # another writer got there first
        if fresh is not None:
            paced, stored = await self.apply(fresh, Tick(), opted_out)
            await self.drive(stored, paced, opted_out)

    async def drive(
        self,
        notification: Notification,
        paced: Paced,
        opted_out: frozenset[Medium],
        *,
        stored: bool = True,
    ) -> None:
        """Hand over each attempt the engine says is due, once pacing and a free in-flight
        slot allow, and follow its outcome, until nothing more is to be sent now.

        ``paced`` was decided from ``notification``. Unless ``stored``, its decision is written
        together with the handover, so a claim's tick and its send cost one write.
        """
        unsaved = None if stored else paced.decision
        while paced.due is not None and not self._stopping:
            due = paced.due
            if paced.start_at is not None and paced.start_at > self.clock.now():
                await self.clock.sleep(paced.start_at - self.clock.now())
            # From the handover write until the outcome is stored, stop() waits for this task
            # instead of cancelling it: cancelled in between, the attempt would stay `sending`
            # (then `unknown`, never resent) although its lease is given back.
            try:
                async with self._in_flight[due.channel]:
                    if self._stopping:
                        return  # nothing handed over: stop() gives the lease back
                    self._handed_over.add(notification.id)
                    handed = await self.hand_over(notification, unsaved, due, opted_out)
                    if handed is None:
                        return
                    notification, paced, unsaved = handed
                    attempt = _send_of(paced.decision)
                    if attempt is None:
                        continue  # the plan wants something else now: pace that instead
                    outcome = await self.send(notification, attempt)
                await self.after_commit(notification, paced.decision)
                paced, notification = await self.apply(notification, outcome, opted_out)
            finally:
                self._handed_over.discard(notification.id)
            unsaved = None

    async def hand_over(
        self,
        notification: Notification,
        unsaved: Decision | None,
        due: Attempt,
        opted_out: frozenset[Medium],
    ) -> tuple[Notification, Paced, Decision | None] | None:
        """The check immediately before a request leaves: record ``due`` as ``sending`` in a
        write version-checked against ``notification`` (an acknowledgement, cancellation or
        opt-out committed meanwhile makes it fail and the plan is decided again).

        Returns the stored notification and its decision (whose ``Send`` is the handover);
        or, when the plan no longer wants ``due``, what it wants instead, not yet stored (the
        notification it was decided from, the decision, and that decision again as
        ``unsaved``); or None when nothing more is to be sent now (stored).
        """
        for _ in range(_SAVE_TRIES):
            now = self.clock.now()
            base = notification if unsaved is None else unsaved.notification
            paced = self.decide(base, HandOver(due.id), opted_out, now)
            decision = paced.decision if unsaved is None else _then(unsaved, paced.decision)
            paced = replace(paced, decision=decision)
            if paced.due is not None:
                return notification, paced, decision
            handed = _send_of(decision) is not None
            stored = await self._commits.save(self.change(paced, now, leased=not handed))
            if stored is not None:
                if not handed:
                    await self.after_commit(stored, decision)
                    return None
                return stored, paced, None
            fresh = await self.store.get(notification.id)
            if fresh is None:
                return None
            notification, unsaved = fresh, None
        raise ConcurrencyError(f"notification {notification.id}: too many concurrent writers")

    async def apply(
        self,
        notification: Notification,
        event: Input,
        opted_out: frozenset[Medium],
        *,
        leased: bool = True,
    ) -> tuple[Paced, Notification]:
        """Decide and store, re-deciding on a fresh copy when another writer got there first.

        When the runner holds the lease (``leased``) it is released unless an attempt is due;
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

    async def apply_many(
        self, notifications: Sequence[Notification], event: Input
    ) -> list[Notification]:
        """:meth:`apply` one client event (a bulk cancel) to each notification, stored in one
        transaction; a notification another writer moved meanwhile is re-decided alone."""
        opted_out = await self.opted_out(notifications)
        now = self.clock.now()
        decided = [(n, self.decide(n, event, opted_out[n.id], now)) for n in notifications]
        saved = await self._commits.save_many(
            [self.change(paced, now, leased=False) for _, paced in decided]
        )
        results = []
        for (notification, paced), stored in zip(decided, saved, strict=True):
            if stored is None:
                _, stored = await self.apply(
                    notification, event, opted_out[notification.id], leased=False
                )
            else:
                await self.after_commit(stored, paced.decision)
            results.append(stored)
        return results

    def change(self, paced: Paced, now: datetime, *, leased: bool = True) -> Change:
        """What to store for a decision, releasing the runner's lease (when it holds one)
        unless an attempt is due or being handed over."""
        release = leased and paced.due is None
        return change_for(paced.decision, now, owner=self.owner if release else None)

    def decide(
        self, notification: Notification, event: Input, opted_out: frozenset[Medium], now: datetime
    ) -> Paced:
        """The engine's decision, with a due attempt held back when pacing says it is not yet
        time; a due attempt within the pacing horizon gets its start time."""
        state = State(notification, self.facts(opted_out))
        decision = decide(state, event, now)
        due = _due_of(decision)
        if due is None:
            return Paced(decision)
        assert due.medium is not None
        assert due.address is not None
        start = self.pacer.admit(due.channel, due.medium, due.address, now)
        if start - now <= self.pacer.horizon:
            return Paced(decision, due, start)
        # Too far off to wait in process: decide again, knowing the channel is held till then
        # (the event's own effects stay; only the attempt becomes a deferral).
        held = replace(state.facts, held={due.channel: start})
        decision = decide(State(notification, held), event, now)
        return Paced(decision, _due_of(decision))

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

    async def send(self, notification: Notification, attempt: Attempt) -> Sent | SendFailed:
        """Render and send one attempt just recorded as ``sending``, with its retry policy;
        translate the outcome."""
        try:
            message = self.messages.render(notification, attempt)
        except TemplateError as error:
            log.error("attempt %s: %s", attempt.id, error)
            return SendFailed(attempt.id, Failure.PERMANENT, str(error), tries=0)
        if message.segments and message.segments > 1:
            self.pacer.charge_extra(attempt.channel, message.segments - 1)
        channel = self.channels[attempt.channel]
        step = notification.plan.steps[attempt.step]
        tries_before = sum(
            a.tries
            for a in notification.attempts
            if (a.pass_, a.step) == (attempt.pass_, attempt.step) and a.id != attempt.id
        )
        log.debug("attempt %s: %s to %s", attempt.id, attempt.channel, mask(attempt.address))
        try:
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
