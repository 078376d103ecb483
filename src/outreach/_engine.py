"""The escalation rules, as one pure function.

``decide(state, event, now)`` takes a notification (plus the facts the runner knows about its
channels and the recipient's opt-outs), one input event and the current instant, and returns the
new notification, the actions the shell must carry out and the log entries describing the
change. It reads no clock, does no I/O and draws no random numbers, so every rule of the design's
*Semantics* section can be tested exhaustively here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from outreach._models import (
    MIN_RETRY_DELAY,
    Attempt,
    AttemptStatus,
    AttentionReason,
    Event,
    EventKind,
    FollowUp,
    Medium,
    Notification,
    QuietHours,
    Status,
    Step,
    Until,
)
from outreach._zones import quiet_hours_zones

# --- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """The notification is due: do whatever its plan says to do now."""


@dataclass(frozen=True, slots=True)
class HandOver:
    """The runner is about to give a :class:`Due` attempt to its channel (pacing and a free
    slot allow it now): record it as ``sending`` if the plan still wants it."""

    attempt_id: str


@dataclass(frozen=True, slots=True)
class Sent:
    """The channel accepted an attempt (``status`` is ``unknown`` after an ambiguous timeout)."""

    attempt_id: str
    provider_id: str | None
    status: AttemptStatus = AttemptStatus.SENT
    tries: int = 1
    sender: str | None = None


class Failure(StrEnum):
    """Why a send did not go out, as far as the engine cares."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    OPTED_OUT = "opted_out"


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The channel raised. ``retry_at`` set means: re-attempt this step then."""

    attempt_id: str
    failure: Failure
    error: str
    retry_at: datetime | None = None
    tries: int = 1


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A provider reported on an attempt (delivery receipt, call progress, bounce).

    ``person``: a person answered the call (answering-machine detection said human, or a key
    was pressed). A call is ``engaged`` whoever answers; only a person reaches the
    ``delivered`` and ``engaged`` rungs of ``Plan.until``.
    """

    attempt_id: str
    status: AttemptStatus
    error: str | None = None
    provider_id: str | None = None
    person: bool = False


@dataclass(frozen=True, slots=True)
class Ack:
    """The customer acknowledged (or replied after the fact)."""

    via: str
    choice: str | None = None
    attempt_id: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """The caller withdrew the notification."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The customer wrote something that is not an answer: kept in the audit trail.

    ``unmatched``: free text that matched no option, acknowledgement or keyword: a person
    should read it (an attention record is opened).
    """

    via: str
    text: str
    attempt_id: str | None = None
    unmatched: bool = False


@dataclass(frozen=True, slots=True)
class OptedOut:
    """The customer opted out of ``medium`` (replied STOP): a wait on that medium ends now.

    ``reason`` is noted on the latest attempt sent on that medium (what reports then say).
    """

    medium: Medium
    reason: str = "opted out"


Input = Tick | HandOver | Sent | SendFailed | StatusUpdate | Ack | Cancel | Reply | OptedOut

# --- outputs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    """This attempt is due; it is not recorded yet. Feed :class:`HandOver` back once pacing
    and the channel's in-flight limit let it go, so that it is recorded ``sending`` only
    immediately before its request leaves (a stop before then loses nothing)."""

    attempt: Attempt


@dataclass(frozen=True, slots=True)
class Send:
    """Hand this attempt to its channel now: it was just recorded as ``sending``."""

    attempt: Attempt


@dataclass(frozen=True, slots=True)
class StartFollowUp:
    """Create the follow-up notification, first due at ``first_due``."""

    follow_up: FollowUp
    first_due: datetime


@dataclass(frozen=True, slots=True)
class CancelCall:
    """Hang up a call that is no longer needed."""

    attempt: Attempt


@dataclass(frozen=True, slots=True)
class RecordOptOut:
    """Suppress ``address`` for ``medium`` from now on (the provider said the person opted out)."""

    medium: Medium
    address: str


@dataclass(frozen=True, slots=True)
class OpenAttention:
    """Open an attention record for this notification, in the same write as the change.

    ``detail`` is None for an unreached ending: the shell describes it (``outreach.outcomes``).
    """

    reason: AttentionReason
    detail: str | None = None


Action = Due | Send | StartFollowUp | CancelCall | RecordOptOut | OpenAttention


@dataclass(frozen=True, slots=True)
class Facts:
    """What the shell knows beyond the notification itself.

    ``media`` maps each configured channel name to its medium; ``unavailable`` names channels
    switched off by a configuration error, with the reason; ``opted_out`` lists the media whose
    address this recipient has opted out of; ``held`` says a channel may not send to this
    recipient before a given time (its pacing or the per-recipient cap).
    """

    media: Mapping[str, Medium]
    unavailable: Mapping[str, str] = field(default_factory=dict)
    opted_out: frozenset[Medium] = frozenset()
    held: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class State:
    """The engine's whole input besides the event and the time."""

    notification: Notification
    facts: Facts


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer: the new notification, what to do, and what to log.

    ``attempts`` are the attempts the decision created or changed, as they now stand.
    """

    notification: Notification
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    attempts: tuple[Attempt, ...] = ()


def decide(state: State, event: Input, now: datetime) -> Decision:
    """Apply one event to one notification at ``now``."""
    run = _Run(state, now)
    match event:
        case Tick():
            run.tick()
        case HandOver():
            run.handing_over = event.attempt_id
            run.tick()
        case Sent():
            run.sent(event)
        case SendFailed():
            run.send_failed(event)
        case StatusUpdate():
            run.status_update(event)
        case Ack():
            run.ack(event)
        case Cancel():
            run.cancel(event)
        case Reply():
            run.reply(event)
        case OptedOut():
            run.opted_out(event)
    return Decision(run.n, tuple(run.actions), tuple(run.events), tuple(run.touched.values()))


# --- rules --------------------------------------------------------------------------------

_WAITING = frozenset(
    {
        AttemptStatus.QUEUED,
        AttemptStatus.SENT,
        AttemptStatus.DELIVERED,
        AttemptStatus.ENGAGED,
        AttemptStatus.UNKNOWN,
    }
)
_FAILED = frozenset({AttemptStatus.UNDELIVERED, AttemptStatus.FAILED})
# Callbacks arrive late, twice and out of order: an attempt's status only ever moves up.
_RANK = {
    AttemptStatus.SENDING: 0,
    AttemptStatus.UNKNOWN: 0,
    AttemptStatus.QUEUED: 1,
    AttemptStatus.SENT: 2,
    AttemptStatus.DELIVERED: 3,
    AttemptStatus.ENGAGED: 4,
    AttemptStatus.UNDELIVERED: 5,
    AttemptStatus.FAILED: 5,
    AttemptStatus.SKIPPED: 5,
}
_LIVE_CALL = frozenset({AttemptStatus.QUEUED, AttemptStatus.SENT, AttemptStatus.ENGAGED})
UNREACHED = frozenset({Status.EXHAUSTED, Status.EXPIRED, Status.FAILED})
"""The endings that open an attention record: the customer was not reached."""
_LATE = UNREACHED | {Status.DELIVERED, Status.ENGAGED}  # still answerable within the grace
_RUNG: dict[Until, int] = {"delivered": 0, "engaged": 1, "acknowledged": 2}
_ENGAGED_AS = {Medium.SMS: "read", Medium.EMAIL: "opened or clicked"}
_QUOTED = 200  # characters of a reply quoted in an attention's detail


def quoted(text: str, limit: int = _QUOTED) -> str:
    """``'my bag is lost…'``: a reply in quotes, cut at ``limit`` characters."""
    text = " ".join(text.split())
    return f"'{text if len(text) <= limit else text[: limit - 1].rstrip() + '…'}'"


def quiet_until(quiet: QuietHours, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The first instant after ``now`` outside the quiet window, or None if ``now`` is outside.

    Wall-clock times are interpreted in ``zone``; on the nights clocks change, both readings of
    the end time are tried and the earliest one that really lies outside the window wins.
    """
    local = now.astimezone(zone)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return None
    day = local.date() if local.time() < quiet.end else local.date() + timedelta(days=1)
    candidates = []
    for offset in (0, 1):  # the end may fall in a DST gap or overlap of the next day too
        for fold in (0, 1):
            end = datetime.combine(day + timedelta(days=offset), quiet.end, zone).replace(fold=fold)
            instant = end.astimezone(UTC)
            if instant > now and not quiet.contains(instant.astimezone(zone).time()):
                candidates.append(instant)
    best = min(candidates)
    # When the end falls in the hour skipped on a spring-forward night, the window really ends
    # when the clocks jump, somewhat before ``best``: walk back to that instant.
    probe = best - _MINUTE
    while probe > now and not quiet.contains(probe.astimezone(zone).time()):
        best, probe = probe, probe - _MINUTE
    return best


_MINUTE = timedelta(minutes=1)

NEVER = datetime.max.replace(tzinfo=UTC)
"""What :func:`quiet_in_any_until` answers when the zones' quiet windows cover every hour."""


def quiet_in_any_until(
    quiet: QuietHours, zones: tuple[ZoneInfo, ...], now: datetime
) -> tuple[datetime, ZoneInfo] | None:
    """The first instant from ``now`` quiet in none of ``zones``, with the zone whose window
    ended last; None if ``now`` is quiet in none. ``NEVER`` when no such instant comes within
    two days: the windows, read in zones this far apart, leave no hour of the day open."""
    at, last = now, None
    while at < now + _TWO_DAYS:
        ends = [(until, zone) for zone in zones if (until := quiet_until(quiet, zone, at))]
        if not ends:
            return None if last is None else (at, last)
        at, last = max(ends, key=lambda end: end[0])
    assert last is not None
    return NEVER, last


_TWO_DAYS = timedelta(days=2)


def notification_id_of(attempt_id: str) -> str:
    """The notification an attempt id belongs to: ``_Run.attempt_id`` mints attempt ids as
    ``<notification id>.<pass>.<step>.<reattempt>``."""
    return attempt_id.split(".", 1)[0]


class _Run:
    """One application of ``decide``: accumulates the new state, actions and log entries."""

    def __init__(self, state: State, now: datetime) -> None:
        # One private copy per decision, changed in place: a copy per change would cost more
        # than the rules themselves. The caller's notification is never touched.
        self.n = state.notification.model_copy()
        self.facts = state.facts
        self.now = now
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.handing_over: str | None = None  # the Due attempt the runner is handing over
        self.touched: dict[str, Attempt] = {}  # by id, the latest state of each attempt put

    # bookkeeping

    def log(self, kind: EventKind, attempt_id: str | None = None, **data: Any) -> None:
        self.events.append(
            Event(
                at=self.now, notification_id=self.n.id, kind=kind, attempt_id=attempt_id, data=data
            )
        )

    def update(self, **changes: Any) -> None:
        self.n.__dict__.update(changes, updated_at=self.now)

    def put(self, attempt: Attempt) -> None:
        """Record ``attempt``, in place if it exists: attempts stay in the order made."""
        self.touched[attempt.id] = attempt
        attempts = self.n.attempts
        for i, existing in enumerate(attempts):
            if existing.id == attempt.id:
                self.update(attempts=(*attempts[:i], attempt, *attempts[i + 1 :]))
                return
        self.update(attempts=(*attempts, attempt))

    def current(self) -> Attempt | None:
        """The latest attempt at the step the cursor is on."""
        latest = None
        for attempt in self.n.attempts:
            at_cursor = (attempt.pass_, attempt.step) == (self.n.pass_, self.n.step)
            if at_cursor and (latest is None or attempt.reattempt > latest.reattempt):
                latest = attempt
        return latest

    def wait_until(self, when: datetime) -> None:
        deadline = self.n.deadline_at
        due = when if deadline is None else min(when, deadline)
        if due != self.n.due_at:
            self.update(due_at=due)

    def finish(self, status: Status, **data: Any) -> None:
        self.update(status=status, due_at=None, finished_at=self.now)
        self.log(EventKind(status.value), **data)
        if status in UNREACHED:
            self.actions.append(OpenAttention(AttentionReason.UNREACHED))

    def late(self) -> bool:
        """Whether an answer now still counts although the notification ended: it ended
        unreached, delivered or engaged, within the plan's grace period."""
        n = self.n
        return (
            n.status in _LATE
            and n.finished_at is not None
            and self.now <= n.finished_at + n.plan.grace
        )

    # events

    def tick(self) -> None:
        if self.n.status.is_terminal:
            if self.n.due_at is not None:
                self.update(due_at=None)
            return
        self.recover_crashed()
        if self.n.status is Status.PENDING:
            self.update(status=Status.ACTIVE)
            self.log(EventKind.ACTIVATED)
        self.proceed()

    def recover_crashed(self) -> None:
        """An attempt still ``sending`` when its lease lapsed: the runner died mid-send."""
        for attempt in self.n.attempts:
            if attempt.status is AttemptStatus.SENDING:
                recovered = attempt.model_copy(
                    update={
                        "status": AttemptStatus.UNKNOWN,
                        "sent_at": attempt.created_at,
                        "updated_at": self.now,
                        "error": "the runner stopped while sending; not resent",
                    }
                )
                self.put(recovered)
                self.log(EventKind.ATTEMPT_STATUS, attempt.id, status=recovered.status)

    def sent(self, event: Sent) -> None:
        attempt = self.n.attempt(event.attempt_id)
        if attempt is None:
            return
        # A delivery receipt may have been processed before the send's own answer.
        ahead = _RANK[attempt.status] > _RANK[event.status]
        self.put(
            attempt.model_copy(
                update={
                    "status": attempt.status if ahead else event.status,
                    "provider_id": event.provider_id,
                    "sender": event.sender,
                    "sent_at": attempt.sent_at or self.now,
                    "updated_at": self.now,
                    "tries": attempt.tries + event.tries,
                }
            )
        )
        self.log(EventKind.ATTEMPT, attempt.id, status=event.status, channel=attempt.channel)
        if not ahead:
            self.receipt(attempt, event.status)
        if self.n.status.is_terminal:
            self.hang_up_late_call(event.attempt_id)
        self.proceed_if_active()

    def hang_up_late_call(self, attempt_id: str) -> None:
        """A call placed while the notification was being acknowledged or cancelled: its
        provider id is known only now, so hang it up now (unless it is the call that
        answered, which is ``engaged``)."""
        attempt = self.n.attempt(attempt_id)
        if (
            attempt is not None
            and attempt.medium is Medium.VOICE
            and attempt.provider_id is not None
            and attempt.status in _LIVE_CALL - {AttemptStatus.ENGAGED}
        ):
            self.actions.append(CancelCall(attempt))

    def send_failed(self, event: SendFailed) -> None:
        attempt = self.n.attempt(event.attempt_id)
        if attempt is None:
            return
        failure, error, retry_at = event.failure, event.error, None
        if failure in (Failure.TRANSIENT, Failure.RATE_LIMITED):
            if event.retry_at is not None:
                retry_at = max(event.retry_at, self.now + MIN_RETRY_DELAY)  # never a tight loop
            spent = self.retries_spent(attempt, event.tries, retry_at)
            if spent is not None:
                error, retry_at = f"{error} ({spent})", None
            if retry_at is None:  # not re-attempted: rate limited or not, the step failed
                failure = Failure.TRANSIENT
        status = AttemptStatus.SKIPPED if failure is Failure.UNAVAILABLE else AttemptStatus.FAILED
        self.put(
            attempt.model_copy(
                update={
                    "status": status,
                    "error": error,
                    "retry_at": retry_at,
                    "updated_at": self.now,
                    "tries": attempt.tries + event.tries,
                }
            )
        )
        self.log(
            EventKind.ATTEMPT,
            attempt.id,
            status=status,
            channel=attempt.channel,
            failure=failure,
            error=error,
        )
        if event.failure is Failure.OPTED_OUT and attempt.medium and attempt.address:
            self.actions.append(RecordOptOut(attempt.medium, attempt.address))
            self.log(EventKind.OPTED_OUT, attempt.id, medium=attempt.medium)
        self.proceed_if_active()

    def retries_spent(self, attempt: Attempt, tries: int, retry_at: datetime | None) -> str | None:
        """Why ``attempt``'s step may not be tried again (after ``tries`` more tries of it, at
        ``retry_at`` if given), or None: its retry policy bounds the tries of the step and how
        long after its first try the last re-attempt may come."""
        plan = self.n.plan
        policy = plan.steps[attempt.step].retry or plan.retry
        same_step = [
            a for a in self.n.attempts if (a.pass_, a.step) == (attempt.pass_, attempt.step)
        ]
        used = sum(a.tries for a in same_step) + tries
        if used >= policy.attempts:
            return f"retry policy spent: {used} of {policy.attempts} tries"
        first = min(a.created_at for a in same_step)
        if retry_at is not None and retry_at - first > policy.max_total_delay:
            return (
                f"retry policy spent: a re-attempt at {retry_at:%H:%M:%S} is past its total delay"
            )
        return None

    def status_update(self, event: StatusUpdate) -> None:
        attempt = self.n.attempt(event.attempt_id)
        if attempt is None:
            return
        moved = _RANK[event.status] > _RANK[attempt.status]
        self.record_status(attempt, event)
        if event.person and attempt.medium is Medium.VOICE:
            self.reach("engaged", f"{attempt.channel} answered by a person", attempt, keep=attempt)
        elif moved:
            self.receipt(attempt, event.status)

    def receipt(self, attempt: Attempt, status: AttemptStatus) -> None:
        """A receipt moved ``attempt`` to ``status``: a rung of the ladder, if it is one. A
        call is ``engaged`` whoever answers (voicemail too): only ``person`` counts for it."""
        if attempt.medium is Medium.VOICE:
            return
        if status is AttemptStatus.DELIVERED:
            self.reach("delivered", f"{attempt.channel} delivered", attempt)
        elif status is AttemptStatus.ENGAGED:
            said = _ENGAGED_AS.get(attempt.medium) if attempt.medium else None
            self.reach("engaged", f"{attempt.channel} {said or 'engaged'}", attempt)

    def reach(
        self, rung: Until, by: str, attempt: Attempt | None, keep: Attempt | None = None
    ) -> None:
        """The customer was reached at ``rung`` (``by`` says how): if that meets the
        plan's ``until``, the escalation is over, as an acknowledgement would end it (every
        pending step and call stopped, except ``keep``, the call a person is on)."""
        n = self.n
        until = n.plan.until
        if until == "acknowledged" or _RUNG[rung] < _RUNG[until]:
            return
        before = n.status
        late = before in UNREACHED and self.late()
        if before.is_terminal and not late:
            return
        self.cancel_calls(keep=None if keep is None else keep.id)
        status = Status(until)
        self.update(status=status, reached_by=by, finished_at=self.now, due_at=None)
        # ``after``: the ending this came after; the shell closes its attention record.
        after = {"after": before} if late else {}
        attempt_id = None if attempt is None else attempt.id
        self.log(EventKind(status.value), attempt_id, reached_by=by, **after)
        self.start_follow_ups(None, first=True)

    def start_follow_ups(self, choice: str | None, *, first: bool) -> None:
        """Start the follow-ups waiting for ``choice``, and on the ``first`` ending that
        reached the customer those with ``when_choice=None`` (an acknowledgement after
        ``delivered`` or ``engaged`` does not start them again)."""
        for follow_up in self.n.plan.follow_ups:
            wanted = first if follow_up.when_choice is None else follow_up.when_choice == choice
            if wanted:
                first_due = self.now + follow_up.after
                self.actions.append(StartFollowUp(follow_up, first_due))
                self.log(EventKind.FOLLOW_UP_STARTED, name=follow_up.label, due=first_due)

    def record_status(self, attempt: Attempt, event: StatusUpdate) -> None:
        """Note a provider's report on ``attempt``: its status only ever moves up."""
        if event.provider_id and not attempt.provider_id:
            attempt = attempt.model_copy(update={"provider_id": event.provider_id})
            self.put(attempt.model_copy(update={"updated_at": self.now}))
        if _RANK[event.status] <= _RANK[attempt.status]:
            if event.status is attempt.status and event.error and not attempt.error:
                # A note learnt late, never replacing one: "voicemail" from the AnsweredBy of
                # a call's TwiML request, after the in-progress callback that lacked it.
                self.put(attempt.model_copy(update={"error": event.error, "updated_at": self.now}))
                self.log(
                    EventKind.ATTEMPT_STATUS, attempt.id, status=event.status, error=event.error
                )
            return
        self.put(
            attempt.model_copy(
                update={
                    "status": event.status,
                    "error": event.error or attempt.error,
                    "sent_at": attempt.sent_at or self.now,
                    "updated_at": self.now,
                }
            )
        )
        self.log(EventKind.ATTEMPT_STATUS, attempt.id, status=event.status, error=event.error)
        current = self.current()
        if (
            not self.n.status.is_terminal
            and event.status in _FAILED
            and current is not None
            and current.id == attempt.id
        ):
            self.update(due_at=self.now)  # early escalation: the runner moves on at once

    def ack(self, event: Ack) -> None:
        n = self.n
        before = n.status
        late = self.late()
        if before.is_terminal and not late:
            self.log(
                EventKind.REPLY_RECORDED,
                event.attempt_id,
                via=event.via,
                choice=event.choice,
                status=n.status,
            )
            return
        self.cancel_calls(keep=event.attempt_id)
        self.update(
            status=Status.ACKNOWLEDGED,
            choice=event.choice,
            acknowledged_via=event.via,
            acknowledged_at=self.now,
            finished_at=self.now,
            due_at=None,
        )
        # ``after``: the ending this answer came after; the shell closes its attention record.
        after = {"after": before} if late else {}
        self.log(
            EventKind.ACKNOWLEDGED, event.attempt_id, via=event.via, choice=event.choice, **after
        )
        option = None if event.choice is None else n.plan.option(event.choice)
        if option is not None and option.handoff:
            detail = f"chose {option.key}: {option.label}"
            self.actions.append(OpenAttention(AttentionReason.HANDOFF, detail))
        self.start_follow_ups(event.choice, first=not before.reached)

    def cancel(self, event: Cancel) -> None:
        if self.n.status.is_terminal:
            return
        self.cancel_calls()
        self.finish(Status.CANCELLED, reason=event.reason)

    def reply(self, event: Reply) -> None:
        self.log(EventKind.REPLY, event.attempt_id, via=event.via, text=event.text)
        if event.unmatched:
            self.update(last_reply=event.text)
            detail = f"replied, not understood: {quoted(event.text)}"
            self.actions.append(OpenAttention(AttentionReason.NOT_UNDERSTOOD, detail))
        attempt = self.n.attempt(event.attempt_id) if event.attempt_id else None
        keep = attempt if attempt is not None and attempt.medium is Medium.VOICE else None
        self.reach("engaged", f"{event.via} reply", attempt, keep=keep)

    def opted_out(self, event: OptedOut) -> None:
        self.log(EventKind.OPTED_OUT, medium=event.medium)
        answered = [
            a
            for a in self.n.attempts
            if a.medium is event.medium and a.sent_at is not None and a.error is None
        ]
        if answered:  # what reports say of that attempt: not "no answer"
            latest = max(answered, key=lambda a: a.sent_at or a.created_at)
            self.put(latest.model_copy(update={"error": event.reason, "updated_at": self.now}))
            # Opting out is an answer of sorts (they read it): a notice that needs no more
            # ends here, before anything moves on to the next channel.
            self.reach("engaged", f"{event.medium} opt-out", latest)
        current = self.current()
        if self.n.status.is_terminal or current is None or current.medium is not event.medium:
            return
        self.update(due_at=self.now)  # no point waiting for an answer on that medium

    def cancel_calls(self, keep: str | None = None) -> None:
        """Hang up calls that may still be ringing or talking, except the one answering now.

        A call that already ended looks the same as one in progress (both are ``engaged``);
        hanging up an ended call is harmless.
        """
        for attempt in self.n.attempts:
            live = attempt.status in _LIVE_CALL and attempt.provider_id is not None
            if attempt.medium is Medium.VOICE and live and attempt.id != keep:
                self.actions.append(CancelCall(attempt))

    # the escalation itself

    def proceed_if_active(self) -> None:
        if self.n.status is Status.ACTIVE:
            self.proceed()

    def proceed(self) -> None:
        """Walk the plan from the cursor until something must be waited for or sent."""
        if self.n.deadline_at is not None and self.now >= self.n.deadline_at:
            self.cancel_calls()
            self.finish(Status.EXPIRED)
            return
        plan = self.n.plan
        while True:
            if self.n.pass_ > plan.repeat:
                everything_skipped = all(a.status is AttemptStatus.SKIPPED for a in self.n.attempts)
                self.finish(Status.FAILED if everything_skipped else Status.EXHAUSTED)
                return
            step = plan.steps[self.n.step]
            current = self.current()
            if current is None:
                if self.begin(step, reattempt=0):
                    return
            elif current.status is AttemptStatus.SENDING:
                return  # the runner holding the lease will report back
            elif current.status in _WAITING:
                assert current.sent_at is not None
                window_end = current.sent_at + step.wait
                # An answer cannot come on a medium the customer has opted out of.
                if self.now < window_end and current.medium not in self.facts.opted_out:
                    self.wait_until(window_end)
                    return
                self.advance()
            elif current.retry_at is not None and current.status is AttemptStatus.FAILED:
                if self.now < current.retry_at:
                    self.wait_until(current.retry_at)
                    return
                if self.begin(step, reattempt=current.reattempt + 1):
                    return
            else:  # skipped, failed for good, undelivered: early escalation
                self.advance()

    def advance(self) -> None:
        if self.n.step + 1 < len(self.n.plan.steps):
            self.update(step=self.n.step + 1)
        else:
            self.update(step=0, pass_=self.n.pass_ + 1)

    def begin(self, step: Step, *, reattempt: int) -> bool:
        """Start (or re-attempt) ``step``; False when it was skipped and the walk goes on."""
        medium = self.facts.media.get(step.channel)
        address = None if medium is None else self.n.recipient.address(medium)
        if medium is None:
            reason = f"no channel named {step.channel!r} is configured"
        elif step.channel in self.facts.unavailable:
            reason = (
                f"channel {step.channel!r} is unavailable: {self.facts.unavailable[step.channel]}"
            )
        elif address is None:
            reason = f"the recipient has no {'email' if medium is Medium.EMAIL else 'phone'}"
        elif medium in self.facts.opted_out:
            reason = f"the recipient opted out of {medium}"
        elif (quiet := self.quiet_hours_past_deadline(medium)) is not None:
            reason = quiet
        else:
            reason = None
        if reason is not None:
            self.record(step, reattempt, medium, None, AttemptStatus.SKIPPED, error=reason)
            return False
        assert medium is not None
        if self.deferred_for_quiet_hours(medium) or self.held_back(step.channel):
            return True
        self.update(due_at=self.now)
        if self.attempt_id(reattempt) != self.handing_over:
            due = self.attempt(step, reattempt, medium, address, AttemptStatus.SENDING)
            self.actions.append(Due(due))
            return True
        attempt = self.record(step, reattempt, medium, address, AttemptStatus.SENDING)
        self.actions.append(Send(attempt))
        return True

    def record(
        self,
        step: Step,
        reattempt: int,
        medium: Medium | None,
        address: str | None,
        status: AttemptStatus,
        error: str | None = None,
    ) -> Attempt:
        attempt = self.attempt(step, reattempt, medium, address, status, error)
        self.put(attempt)
        self.log(EventKind.ATTEMPT, attempt.id, status=status, channel=step.channel, error=error)
        return attempt

    def attempt_id(self, reattempt: int) -> str:
        """The id of an attempt at the cursor's step (see :func:`notification_id_of`)."""
        n = self.n
        return f"{n.id}.{n.pass_}.{n.step}.{reattempt}"

    def attempt(
        self,
        step: Step,
        reattempt: int,
        medium: Medium | None,
        address: str | None,
        status: AttemptStatus,
        error: str | None = None,
    ) -> Attempt:
        """A new attempt at the cursor's step (not recorded)."""
        n = self.n
        return Attempt(
            id=self.attempt_id(reattempt),
            notification_id=n.id,
            pass_=n.pass_,
            step=n.step,
            reattempt=reattempt,
            channel=step.channel,
            medium=medium,
            address=address,
            status=status,
            error=error,
            created_at=self.now,
            updated_at=self.now,
        )

    def held_back(self, channel: str) -> bool:
        """The channel's pacing says not yet: wait for the slot instead of sending now."""
        until = self.facts.held.get(channel)
        if until is None or until <= self.now:
            return False
        self.wait_until(until)
        self.log(EventKind.DEFERRED, until=until, reason="pacing")
        return True

    def quiet_hours_hold(self, medium: Medium) -> tuple[datetime, ZoneInfo] | None:
        """When quiet hours hold a send on ``medium`` now: the end of the window, and the zone
        it is read in; None when they do not."""
        plan = self.n.plan
        quiet = plan.quiet_hours
        if quiet is None or plan.urgent or medium not in quiet.media:
            return None
        return quiet_in_any_until(
            quiet, quiet_hours_zones(self.n.recipient, plan.timezone), self.now
        )

    def quiet_hours_past_deadline(self, medium: Medium) -> str | None:
        """Why a send held by quiet hours is skipped: it could only go out at or after the
        deadline, which ends the escalation first, or never (the windows of a number's zones
        cover the whole day). Skipping lets the walk go on to a step quiet hours do not hold,
        so they never expire a notification untried."""
        deadline = self.n.deadline_at
        hold = self.quiet_hours_hold(medium)
        if hold is None:
            return None
        until, zone = hold
        if until == NEVER:
            return "quiet hours cover every hour of the day in the phone number's time zones"
        if deadline is None or until < deadline:
            return None
        return f"quiet hours until {until.astimezone(zone):%H:%M} {zone.key}, past the deadline"

    def deferred_for_quiet_hours(self, medium: Medium) -> bool:
        hold = self.quiet_hours_hold(medium)
        if hold is None:
            return False
        until, _ = hold
        previous_due = self.n.due_at
        self.wait_until(until)
        if self.n.due_at != previous_due:
            self.log(EventKind.DEFERRED, until=until, reason="quiet hours")
        return True
