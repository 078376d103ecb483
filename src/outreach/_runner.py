"""The only loop: claim due notifications, let the engine decide, send, record, repeat.

Each claimed notification is driven until the engine has nothing more to send now: the
attempt is recorded as ``sending`` before the provider is called, the outcome is fed back to
the engine, and every write is version-checked. Writes from concurrent sends are grouped into
one transaction (group commit), which is what makes SQLite keep up. Between rounds the runner
sleeps until the next due time, a bounded poll, or a wake-up (:meth:`Runner.run_forever`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from outreach._alerts import ChannelWatch, failure_code
from outreach._attentions import (
    attentions_in,
    open_attention,
    updates_in,
    wants_attention,
    with_attentions,
)
from outreach._clock import Clock, SystemClock
from outreach._engine import (
    UNREACHED,
    Cancel,
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
from outreach._models import (
    Attempt,
    AttemptStatus,
    Attention,
    AttentionReason,
    Event,
    EventKind,
    Medium,
    Notification,
    Status,
)
from outreach._paging import (
    PageAudit,
    Paging,
    page_campaign,
    paged_for,
    settled,
    unanswered,
    with_pages,
)
from outreach._ratelimit import Pacer
from outreach._redact import mask
from outreach._retry import GaveUp, with_retries
from outreach._senders import SenderChoice
from outreach._sweeper import Sweeper
from outreach._telemetry import Telemetry
from outreach.channels import Channel
from outreach.exceptions import (
    ConcurrencyError,
    ConfigurationError,
    OutreachError,
    PermanentDeliveryError,
    RateLimited,
    StoreError,
    TemplateError,
    TransientDeliveryError,
)
from outreach.stores import Change, EventFilter, Limit, Store

log = logging.getLogger("outreach.runner")

_SAVE_TRIES = 5
_UNANSWERED = (EventKind.EXHAUSTED, EventKind.EXPIRED, EventKind.FAILED)
LEASE = timedelta(seconds=30)
"""How long a claim holds a notification: a dead runner's work is taken over within it."""
WINDOW_PER_SLOT = 2
"""Notifications claimed per in-flight slot of the runner's channels (by default)."""
MAX_WINDOW = 500
"""The most notifications claimed and in progress at once (by default)."""
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
    for action in decision.actions:  # a loop, not next(generator): this runs per decision
        if isinstance(action, Due):
            return action.attempt
    return None


def _send_of(decision: Decision) -> Attempt | None:
    """The attempt a decision recorded as ``sending`` (handed over), if any."""
    for action in decision.actions:
        if isinstance(action, Send):
            return action.attempt
    return None


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


def change_for(
    decision: Decision, now: datetime, *, owner: str | None, fence: int | None = None
) -> Change:
    """What to store for a decision: the new state, the attempts it touched, its log,
    follow-ups and opt-outs (``owner`` releases that lease; ``fence`` is the lease's counter)."""
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
    attentions = attentions_in(events, decision.notification)
    return Change(
        decision.notification,
        events,
        children,
        opt_outs,
        owner,
        decision.attempts,
        fence=fence,
        attentions=attentions,
        attention_updates=updates_in(events),
    )


_Answer = asyncio.Future[list[Notification | None]]  # per change, the stored state or None


class LeaseLost(Exception):
    """Another runner claimed this notification after this one's lease lapsed: it is theirs
    to drive now (the write that found out was refused)."""


class _GroupCommit:
    """Queues saves from concurrent tasks and writes each burst in one transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[Sequence[Change], _Answer]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def save(self, change: Change) -> Notification | None:
        """Store one change (with whatever else is queued); None if it lost its check."""
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


class _Endings:
    """The tasks of a run that ended since it last looked. Each task reports its own end
    (one callback per task), where ``asyncio.wait`` would add and remove a callback on every
    running task at every wait: with hundreds running, that is most of an ending's cost."""

    def __init__(self) -> None:
        self._ended: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    def track(self, task: asyncio.Task[None]) -> None:
        task.add_done_callback(self._end)

    def _end(self, task: asyncio.Task[None]) -> None:
        self._ended.append(task)
        self._changed.set()

    async def wait(self, at_least: int) -> list[asyncio.Task[None]]:
        """Wait until ``at_least`` tracked tasks ended that were not returned before; all
        those that did."""
        while len(self._ended) < at_least:
            self._changed.clear()
            await self._changed.wait()
        ended, self._ended = self._ended, []
        return ended


class _Listener:
    """Runs the store's :meth:`~outreach.stores.Store.watch` in a task of its own while the
    runner loops: what it hears sets the runner's wake-up. A store that cannot hear is polled;
    one that stopped hearing (a lost connection) is polled, and listened to again after a poll
    interval."""

    def __init__(self, store: Store, wake: asyncio.Event, clock: Clock) -> None:
        self._store = store
        self._wake = wake
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._retry_at: datetime | None = None
        self.heard = False
        """Whether a wake-up came from another process since the runner last looked."""

    def _heard(self) -> None:
        self.heard = True
        self._wake.set()

    def keep_listening(self, poll_interval: timedelta) -> None:
        """Start listening; after a failure, start again once its retry time has come."""
        if self._task is None or (
            self._retry_at is not None and self._clock.now() >= self._retry_at
        ):
            self._retry_at = None
            self._task = asyncio.create_task(self._store.watch(self._heard))
            self._task.add_done_callback(lambda task: self._ended(task, poll_interval))

    def _ended(self, task: asyncio.Task[None], poll_interval: timedelta) -> None:
        error = None if task.cancelled() else task.exception()
        if error is None:
            return  # stopped, or a store that cannot hear (it returns at once): polled
        log.warning("not hearing other processes' writes; polling: %s", error)
        self._retry_at = self._clock.now() + poll_interval

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


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
    lease: timedelta = LEASE
    batch_size: int | None = None
    """How many notifications are claimed and in progress at once; None: :attr:`window`
    follows the channels' in-flight slots."""
    max_in_flight: int = 100
    drain_timeout: timedelta = timedelta(seconds=10)
    health: ChannelHealth = field(default_factory=ChannelHealth)
    """Channels switched off by a configuration error, and when each is probed again."""
    alerts: ChannelWatch = field(default_factory=ChannelWatch)
    """Per channel, the recent outcomes by failure code: spikes raise ``on_channel_alert``."""
    telemetry: Telemetry = field(default_factory=Telemetry)
    wake_debounce: timedelta = timedelta(milliseconds=50)
    """The shortest time between two rounds that wake-ups from other processes start."""
    paging: Paging | None = None
    """Who is paged when an attention record opened here is not taken in time."""

    def __post_init__(self) -> None:
        self.sweeper = Sweeper(self.store, self.clock)
        self.page_audit = PageAudit(self.store, self.clock)
        self._commits = _GroupCommit(self.store)
        self._senders = SenderChoice(self.store, self.clock)
        self._in_flight = {
            name: asyncio.Semaphore(c.max_in_flight or self.max_in_flight)
            for name, c in self.channels.items()
        }
        self._channel_errors: dict[str, tuple[str, Exception]] = {}  # attempt id -> hook args
        self._handed_over: set[str] = set()  # handing over, or outcome not yet stored
        self._leases: dict[str, int] = {}  # notification id -> fencing counter of our lease
        self._stopping = False

    @property
    def window(self) -> int:
        """How many notifications are claimed and in progress at once: ``batch_size`` when
        set, else :data:`WINDOW_PER_SLOT` per in-flight slot of the channels, at most
        :data:`MAX_WINDOW` (a claim never leases much more than can be sent soon; without
        channels, as for one of ``max_in_flight`` slots)."""
        if self.batch_size is not None:
            return self.batch_size
        slots = sum(c.max_in_flight or self.max_in_flight for c in self.channels.values())
        return min(MAX_WINDOW, WINDOW_PER_SLOT * (slots or self.max_in_flight))

    def facts(self, opted_out: frozenset[Medium] = frozenset()) -> Facts:
        unavailable = self.health.unavailable(self.clock.now())
        return Facts(media=self.media, unavailable=unavailable, opted_out=opted_out)

    async def opted_out(
        self, notifications: Sequence[Notification]
    ) -> dict[str, frozenset[Medium]]:
        """Per notification id, the media whose address its recipient has opted out of."""
        addresses = {
            n.id: [
                (medium, address)
                for medium in _MEDIA
                if (address := n.recipient.address(medium)) is not None
            ]
            for n in notifications
        }
        wanted = {pair for pairs in addresses.values() for pair in pairs}
        suppressed = await self.store.opted_out(sorted(wanted)) if wanted else set()
        if not suppressed:  # the usual answer: nobody in the batch opted out
            return dict.fromkeys(addresses, frozenset())
        return {
            nid: frozenset(medium for medium, address in pairs if (medium, address) in suppressed)
            for nid, pairs in addresses.items()
        }

    async def run_due(self) -> int:
        """Run everything due now; return how many claims were handled.

        Each claim is decided as one batch: what needs no send is stored together (one group
        commit); each notification that has an attempt due carries on in a task of its own
        (:meth:`drive`). Claims are topped up while earlier sends are still going (a rolling
        window of about :attr:`window` notifications), so no batch waits for the slowest send
        of the one before. Cancelled, it stops as :meth:`stop` says.
        """
        self._stopping = False
        handled = 0
        running: dict[asyncio.Task[None], str] = {}  # task -> the notification it drives
        claimed: list[str] = []  # a batch being decided, not yet running
        failures: list[BaseException] = []
        window = self.window
        refill_below = max(window // 2, 1)
        drained = False  # the last claim found nothing due
        endings = _Endings()
        renewal = asyncio.create_task(self.keep_leases(running))
        try:
            while True:
                if not drained and len(running) < refill_below and not failures:
                    batch, opted_out = await self.claim(window - len(running))
                    claimed = [n.id for n in batch]
                    drained = not batch
                    handled += len(batch)
                    for notification_id, work in await self.begin(batch, opted_out, failures):
                        task = asyncio.create_task(work)
                        endings.track(task)
                        running[task] = notification_id
                    claimed = []
                if not running:
                    if failures:
                        # One notification's failure never stops the others; report it at the end.
                        raise failures[0]
                    if drained:
                        return handled
                    continue
                # Every running task when nothing more is to be claimed, else the first to end.
                done = await endings.wait(len(running) if drained or failures else 1)
                for task in done:
                    del running[task]
                    if task.exception() is not None:
                        log.error("a notification could not be driven", exc_info=task.exception())
                        failures.append(task.exception())  # type: ignore[arg-type]
                if drained:
                    drained = False  # what just ran may have made more work due: look again
        except asyncio.CancelledError:
            await self.stop(running, claimed)
            raise  # the cancellation, even when the store failed while stopping
        finally:
            renewal.cancel()
            await asyncio.gather(renewal, return_exceptions=True)

    async def keep_leases(self, running: Mapping[asyncio.Task[None], str]) -> None:
        """Renew the leases of the notifications being driven (waiting for pacing or a slot,
        or with a request in flight), every third of a lease, in one statement per round. A
        lease found taken over is not asked for again; its writes keep their fencing counter,
        so the store refuses them."""
        never = asyncio.Event()
        lost: set[str] = set()
        while True:
            await self.clock.sleep_until(self.clock.now() + self.lease / 3, never)
            held = {
                nid: self._leases[nid]
                for nid in running.values()
                if nid in self._leases and nid not in lost
            }
            if not held:
                continue
            try:
                kept = await self.store.renew(
                    held, owner=self.owner, until=self.clock.now() + self.lease
                )
            except StoreError as error:
                log.warning("leases could not be renewed: %s", error)
                continue
            for notification_id in held.keys() - kept:
                log.warning("notification %s: lease taken over by another runner", notification_id)
                lost.add(notification_id)

    async def run_forever(self, wake: asyncio.Event, poll_interval: timedelta) -> None:
        """Run what is due, then sleep until the next due time, for at most ``poll_interval``,
        or until ``wake`` is set: by this process's own writes, or when the store hears
        another process's (:meth:`~outreach.stores.Store.watch`, PostgreSQL's ``LISTEN``).
        However many wake-ups other processes send, they start at most one round per
        ``wake_debounce``. After each round the sweeper looks for stuck notifications, and (with
        ``paging``) the page audit for records whose pages all ended untaken unnoticed (each at
        most once a minute). Cancelled, it stops as :meth:`run_due` does."""
        listener = _Listener(self.store, wake, self.clock)
        try:
            while True:
                listener.keep_listening(poll_interval)
                wake.clear()
                listener.heard = False
                started = self.clock.now()
                try:
                    await self.run_due()
                    due = await self.store.next_due()
                except OutreachError:
                    # A locked or unreachable store, say: logged, retried after the poll interval.
                    log.exception("running due notifications failed; trying again shortly")
                    due = None
                await self.sweeper.sweep_if_due()
                if self.paging is not None:  # a worker that pages audits its pages
                    for attention in await self.page_audit.audit_if_due():
                        await self.report_unanswered(attention)
                poll = self.clock.now() + poll_interval
                await self.clock.sleep_until(poll if due is None else min(due, poll), wake)
                rest = started + self.wake_debounce - self.clock.now()
                if listener.heard and rest > timedelta(0):
                    await self.clock.sleep(rest)  # a burst of wake-ups: one round, not many
        finally:
            await listener.stop()

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
        given_back = [*running.values(), *claimed]
        for notification_id in given_back:
            self._leases.pop(notification_id, None)
        try:
            handed_back = await self.store.release(given_back, owner=self.owner)
        except OutreachError as error:  # a store gone (or its schema dropped) must not keep us
            log.warning(
                "stopped: %d lease(s) could not be given back and lapse within %s: %s",
                len(given_back),
                self.lease,
                error,
            )
            return
        log.info("stopped: %d notification(s) handed back for another runner", handed_back)

    async def claim(self, limit: int) -> tuple[list[Notification], dict[str, frozenset[Medium]]]:
        """Lease up to ``limit`` due notifications, with their recipients' opt-outs."""
        batch = await self.store.claim_due(
            self.clock.now(), owner=self.owner, lease=self.lease, limit=limit
        )
        self._leases.update(batch.epochs)
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
        decided: list[tuple[Notification, State, Input, Decision]] = []
        try:
            stopped = await settled(self.store, batch)  # pages of records someone already has
        except Exception as error:
            log.error("a claimed batch's pages could not be checked", exc_info=error)
            failures.append(error)
            return []
        for notification in batch:
            try:
                state = State(notification, self.facts(opted_out[notification.id]))
                reason = stopped.get(notification.id)
                event: Input = Tick() if reason is None else Cancel(reason)
                decision = await self.attend(decide(state, event, now))
                decided.append((notification, state, event, decision))
            except Exception as error:
                log.error("notification %s could not be driven", notification.id, exc_info=error)
                failures.append(error)
        try:
            paced_batch = await self.pace([(s, e, d) for _, s, e, d in decided], now)
        except Exception as error:
            log.error("a claimed batch could not be paced", exc_info=error)
            failures.append(error)
            return []
        for (notification, _, _, _), paced in zip(decided, paced_batch, strict=True):
            (quiet if paced.due is None else sending).append((notification, paced))
        work = [(n.id, self.drive(n, paced, opted_out[n.id], stored=False)) for n, paced in sending]
        if not quiet:
            return work
        try:
            saved = await self.save_many([self.change(p, now) for _, p in quiet])
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
            try:
                paced, stored = await self.apply(fresh, Tick(), opted_out)
            except LeaseLost as lost:
                log.warning("%s", lost)
                return
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
        try:
            await self._drive(notification, paced, opted_out, None if stored else paced.decision)
        except LeaseLost as lost:
            log.warning("%s", lost)

    async def _drive(
        self,
        notification: Notification,
        paced: Paced,
        opted_out: frozenset[Medium],
        unsaved: Decision | None,
    ) -> None:
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
            paced = await self.decide(base, HandOver(due.id), opted_out, now)
            decision = paced.decision if unsaved is None else _then(unsaved, paced.decision)
            paced = replace(paced, decision=decision)
            if paced.due is not None:
                return notification, paced, decision
            handed = _send_of(decision) is not None
            change = self.change(paced, now, fenced=True, leased=not handed)
            stored = await self.save(change)
            if stored is not None:
                if not handed:
                    await self.after_commit(stored, decision)
                    return None
                return stored, paced, None
            await self.check_lease(change)
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
            paced = await self.decide(notification, event, opted_out, now)
            change = self.change(paced, now, fenced=leased, leased=leased)
            stored = await self.save(change)
            if stored is not None:
                await self.after_commit(stored, paced.decision)
                return paced, stored
            await self.check_lease(change)
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
        decided = [(n, await self.decide(n, event, opted_out[n.id], now)) for n in notifications]
        saved = await self._commits.save_many(
            [self.change(paced, now, fenced=False, leased=False) for _, paced in decided]
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

    def change(
        self, paced: Paced, now: datetime, *, fenced: bool = True, leased: bool = True
    ) -> Change:
        """What to store for a decision, releasing the runner's lease (when it holds one)
        unless an attempt is due or being handed over. A ``fenced`` write (the runner's own,
        on a notification it claimed) is refused once another claim took it over."""
        notification_id = paced.decision.notification.id
        release = leased and paced.due is None
        fence = self._leases.get(notification_id) if fenced else None
        change = change_for(paced.decision, now, owner=self.owner if release else None, fence=fence)
        return change if self.paging is None else with_pages(change, self.paging, now)

    async def save(self, change: Change) -> Notification | None:
        """Store one change (with whatever else is queued); None if it lost its check."""
        [stored] = await self.save_many([change])
        return stored

    async def save_many(self, changes: Sequence[Change]) -> list[Notification | None]:
        """Store changes (one group commit); forget the leases they gave back."""
        saved = await self._commits.save_many(changes)
        for change, stored in zip(changes, saved, strict=True):
            if stored is not None and change.owner is not None:
                self._leases.pop(change.notification.id, None)
        return saved

    async def check_lease(self, change: Change) -> None:
        """After a fenced write was refused: raise :class:`LeaseLost` if the lease is no
        longer ours (else the version moved on, and the caller decides again)."""
        if change.fence is None:
            return
        notification_id = change.notification.id
        until = self.clock.now() + self.lease
        held = await self.store.renew(
            {notification_id: change.fence}, owner=self.owner, until=until
        )
        if notification_id not in held:
            self._leases.pop(notification_id, None)
            raise LeaseLost(
                f"notification {notification_id}: another runner took it over after this "
                "one's lease lapsed; this runner's write was refused"
            )

    async def decide(
        self, notification: Notification, event: Input, opted_out: frozenset[Medium], now: datetime
    ) -> Paced:
        """The engine's decision, with a due attempt held back when pacing says it is not yet
        time; a due attempt within the pacing horizon gets its start time."""
        state = State(notification, self.facts(opted_out))
        decision = await self.attend(decide(state, event, now))
        if _due_of(decision) is None:
            return Paced(decision)  # nothing to pace: no call to the store
        [paced] = await self.pace([(state, event, decision)], now)
        return paced

    async def attend(self, decision: Decision) -> Decision:
        """``decision`` with the attention record it opens, or with its causes added to the
        notification's open record (looked up only when the decision has a cause)."""
        if not wants_attention(decision):
            return with_attentions(decision)
        return with_attentions(decision, await open_attention(self.store, decision.notification))

    async def pace(
        self, decided: Sequence[tuple[State, Input, Decision]], now: datetime
    ) -> list[Paced]:
        """Pace the attempts these decisions say are due, in one call to the store (whose
        limits every process shares). Within the horizon an attempt gets its start time;
        beyond it the decision is made again, knowing the channel is held till then (the
        event's own effects stay; only the attempt becomes a deferral, stored as the
        notification's due time)."""
        dues = [_due_of(decision) for _, _, decision in decided]
        sends = [() if due is None else self._limits(due) for due in dues]
        if any(sends):
            horizon = self.horizon
            delays = await self.store.pace(sends, now=self._pacing_clock(now), horizon=horizon)
        else:
            delays = [timedelta(0)] * len(sends)
        paced = []
        for (state, event, decision), due, delay in zip(decided, dues, delays, strict=True):
            if due is None:
                paced.append(Paced(decision))
            elif delay <= self.horizon:
                paced.append(Paced(decision, due, now + delay))
            else:
                held = replace(state.facts, held={due.channel: now + delay})
                again = await self.attend(decide(replace(state, facts=held), event, now))
                paced.append(Paced(again, _due_of(again)))
        return paced

    @property
    def horizon(self) -> timedelta:
        """The longest a paced send waits in process; later ones are deferred in the store.
        At most a third of a lease, so a paced wait never outlasts the claim it waits under
        (renewed, too, every third of a lease while it waits)."""
        return min(self.pacer.horizon, self.lease / 3)

    def _limits(self, due: Attempt) -> tuple[Limit, ...]:
        assert due.medium is not None
        assert due.address is not None
        return self.pacer.limits(due.channel, due.medium, due.address)

    def _pacing_clock(self, now: datetime) -> datetime | None:
        """On the real clock the store's own (PostgreSQL's: one clock for every host); a
        virtual clock's time otherwise."""
        return None if isinstance(self.clock, SystemClock) else now

    async def after_commit(self, notification: Notification, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, CancelCall):
                await self.cancel_call(action.attempt)
        await self.hooks.after_commit(notification, decision.events)
        self.telemetry.observe(notification, decision.events)
        for alert in self.alerts.observe(notification, decision.events, self.clock.now()):
            self.telemetry.channel_alert(alert)
            await self.hooks.channel_alert(alert)
        for event in decision.events:
            if event.data.get("after") in UNREACHED:
                reached = event.data.get("reached_by")
                note = (
                    f"reached after all: {reached}"
                    if reached
                    else f"answered after all, via {event.data.get('via')}"
                )
                await self.close_unreached(notification, note)
            elif event.kind in _UNANSWERED and paged_for(notification) is not None:
                await self.page_ended(notification)
        for event in decision.events:
            reported = self._channel_errors.pop(event.attempt_id or "", None)
            if reported is not None:
                await self.hooks.channel_error(*reported)
        for event in decision.events:
            if event.kind in (
                EventKind.ACKNOWLEDGED,
                EventKind.DELIVERED,
                EventKind.ENGAGED,
                EventKind.EXHAUSTED,
                EventKind.EXPIRED,
                EventKind.FAILED,
                EventKind.CANCELLED,
            ):
                log.info("notification %s %s", notification.id, event.kind.value)
            elif event.kind is EventKind.ATTENTION_OPENED:  # the detail may quote the customer
                log.info(
                    "notification %s needs a person (%s): attention %s",
                    notification.id,
                    event.data["reason"],
                    event.data["attention_id"],
                )
            elif event.kind is EventKind.ATTENTION_UPDATED:
                log.info(
                    "notification %s needs a person again (%s): added to attention %s",
                    notification.id,
                    event.data["reason"],
                    event.data["attention_id"],
                )

    async def close_unreached(self, notification: Notification, note: str) -> None:
        """The customer answered (or was reached) after all, late, within the grace period:
        the attention record their unreached ending opened is resolved, by the customer, with
        ``note``. A separate write: should it be lost, the record stays open, and a person
        finds the notification acknowledged (or delivered, engaged). A record the customer
        added to since (a handoff, a reply nobody understood) stays open: a person reads it."""
        cases = [
            case
            for case in await self.store.attentions(recipient_id=notification.recipient.id)
            if case.notification_id == notification.id and case.reason is AttentionReason.UNREACHED
        ]
        if cases:
            added = EventFilter(notification.id, kinds=frozenset({EventKind.ATTENTION_UPDATED}))
            amended = {e.data["attention_id"] for e in await self.store.events(where=added)}
            cases = [case for case in cases if case.id not in amended]
        for case in cases:
            found = await self.store.resolve_attention(
                case.id, by="customer", note=note, now=self.clock.now()
            )
            if found is not None and found[1] is not None:
                await self.hooks.attention_resolved(found[0])
            await self.stop_paging(case.id, "resolved: the customer answered")

    async def page_ended(self, page: Notification) -> None:
        """A page ended unanswered: if it was the last one and nobody took the record, say
        so loudly (an ERROR and ``on_attention_unanswered``), once."""
        attention = await unanswered(self.store, page, self.clock.now())
        if attention is not None:
            await self.report_unanswered(attention)

    async def report_unanswered(self, attention: Attention) -> None:
        """Nobody took ``attention`` (just marked so): an ERROR and the hook."""
        log.error(
            "attention %s (%s, customer %s): every page ended and nobody took it",
            attention.id,
            attention.reason.value,
            attention.recipient_id,
        )
        await self.hooks.attention_unanswered(attention)

    async def stop_paging(self, attention_id: str, reason: str) -> int:
        """Cancel the pages of one attention record still running; how many."""
        return await self.cancel_campaign(page_campaign(attention_id), reason=reason)

    async def cancel_campaign(self, campaign: str, *, reason: str | None, batch: int = 500) -> int:
        """Cancel every pending or active notification of ``campaign``, ``batch`` to a
        transaction (never the whole campaign in memory); how many were cancelled."""
        cancelled = 0
        seen: set[str] = set()
        while found := await self.store.unfinished_in_campaign(campaign, limit=batch):
            fresh = [n for n in found if n.id not in seen]
            if not fresh:  # only ones another writer keeps active: nothing more to do here
                break
            seen.update(n.id for n in fresh)
            stored = await self.apply_many(fresh, Cancel(reason))
            cancelled += sum(n.status is Status.CANCELLED for n in stored)
        return cancelled

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
            await self.store.charge(self.pacer.rate(attempt.channel, message.segments - 1))
        channel = self.channels[attempt.channel]
        sender = await self._senders.choose(notification, attempt, channel.senders)
        if sender is not None:
            message = replace(message, sender=sender)
        step = notification.plan.steps[attempt.step]
        tries_before = sum(
            a.tries
            for a in notification.attempts
            if (a.pass_, a.step) == (attempt.pass_, attempt.step) and a.id != attempt.id
        )
        log.debug("attempt %s: %s to %s", attempt.id, attempt.channel, mask(attempt.address))
        with self.telemetry.send(attempt.channel, channel.name, attempt.id) as record:
            try:
                receipt, tries = await with_retries(
                    lambda: channel.send(message),
                    step.retry or notification.plan.retry,
                    self.clock,
                    tries_before=tries_before,
                )
            except GaveUp as gave_up:
                failed = await self.failure(attempt, gave_up)
                record.outcome, record.tries = failed.failure.value, gave_up.tries
                record.error_code = failure_code(AttemptStatus.FAILED, failed.error)
                return failed
            record.outcome, record.tries = receipt.status.value, tries
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
            # The send reached no one: it gives its place in the cap back.
            await self.store.charge(self.pacer.capped(attempt.medium, attempt.address, -1))
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
