"""One example per rule of the design's *Semantics* section, run through the pure engine.

Each test builds a notification, feeds ``decide`` a few events at chosen instants and checks the
new state, the actions and the log. ``tests/test_engine_properties.py`` explores the same rules
with random event sequences; these tests pin down the exact behaviour of each one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from outreach import (
    AttemptStatus,
    FollowUp,
    Notification,
    Option,
    Plan,
    QuietHours,
    Recipient,
    RetryPolicy,
    Status,
    Step,
)
from outreach._engine import (
    Ack,
    Cancel,
    CancelCall,
    Decision,
    Due,
    Facts,
    Failure,
    HandOver,
    Input,
    OpenAttention,
    OptedOut,
    RecordOptOut,
    Reply,
    Send,
    SendFailed,
    Sent,
    StartFollowUp,
    State,
    StatusUpdate,
    Tick,
    decide,
    quiet_until,
)
from outreach._models import Attempt, AttentionReason, EventKind, Medium

NEW_YORK = ZoneInfo("America/New_York")
T0 = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)  # 10:00 in New York: outside any quiet hours here
PHONE = "+16175550123"
EMAIL = "pax@example.com"
MEDIA = {"sms": Medium.SMS, "email": Medium.EMAIL, "voice": Medium.VOICE}
NIGHT = QuietHours(start="21:00", end="08:00")


def t(minutes: float = 0, **more: float) -> datetime:
    """An instant ``minutes`` (plus ``more``) after T0."""
    return T0 + timedelta(minutes=minutes, **more)


def make_plan(*steps: str | Step, **settings: Any) -> Plan:
    """A plan of the given steps (a bare channel name means a 15-minute wait)."""
    return Plan(
        name="p",
        steps=[s if isinstance(s, Step) else Step(channel=s, template="t") for s in steps],
        options=[Option(key="1", label="one"), Option(key="2", label="two")],
        **settings,
    )


def make_notification(
    plan: Plan, recipient: Recipient | None = None, at: datetime = T0
) -> Notification:
    """A stored, pending notification, due at once, as ``start()`` creates it."""
    return Notification(
        id="n1",
        recipient=recipient or Recipient(id="r", phone=PHONE, email=EMAIL, timezone="UTC"),
        plan=plan,
        created_at=at,
        updated_at=at,
        due_at=at,
        deadline_at=None if plan.deadline is None else at + plan.deadline,
    )


class Engine:
    """Drives one notification through ``decide``, keeping the latest state."""

    def __init__(self, n: Notification, facts: Facts | None = None) -> None:
        self.n = n
        self.facts = facts or Facts(MEDIA)

    def __call__(self, event: Input, at: datetime) -> Decision:
        """Decide ``event``; an attempt that comes due is handed over at once, as the runner
        does when pacing allows (the two decisions reported as one)."""
        decision = decide(State(self.n, self.facts), event, at)
        due = [action.attempt for action in decision.actions if isinstance(action, Due)]
        if due:
            [attempt] = due
            handed = decide(State(decision.notification, self.facts), HandOver(attempt.id), at)
            kept = tuple(action for action in decision.actions if not isinstance(action, Due))
            decision = Decision(
                handed.notification,
                kept + handed.actions,
                decision.events + handed.events,
                decision.attempts + handed.attempts,
            )
        self.n = decision.notification
        return decision

    def tick(self, at: datetime) -> Decision:
        return self(Tick(), at)

    def sent(
        self, attempt: Attempt, at: datetime, status: AttemptStatus = AttemptStatus.SENT
    ) -> Decision:
        return self(Sent(attempt.id, provider_id=f"prov-{attempt.id}", status=status), at)

    def attempt(self, pass_: int, step: int, reattempt: int = 0) -> Attempt:
        found = [
            a for a in self.n.attempts if (a.pass_, a.step, a.reattempt) == (pass_, step, reattempt)
        ]
        assert len(found) == 1, self.n.attempts
        return found[0]


def sends(decision: Decision) -> list[Attempt]:
    return [action.attempt for action in decision.actions if isinstance(action, Send)]


def only_send(decision: Decision) -> Attempt:
    attempts = sends(decision)
    assert len(attempts) == 1, decision.actions
    return attempts[0]


def kinds(decision: Decision) -> list[EventKind]:
    return [event.kind for event in decision.events]


def started(
    plan: Plan, facts: Facts | None = None, recipient: Recipient | None = None
) -> tuple[Engine, Attempt]:
    """A notification ticked at T0 whose first step was sent at T0."""
    engine = Engine(make_notification(plan, recipient), facts)
    first = only_send(engine.tick(T0))
    engine.sent(first, T0)
    return engine, first


# --- wait ---------------------------------------------------------------------------------


def test_wait_runs_from_when_the_attempt_was_sent() -> None:
    """The next step comes `wait` after the `Sent` event's time, not after the step was due."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    assert first.status is AttemptStatus.SENDING
    engine.sent(first, t(2))  # the provider took two minutes to accept it
    assert engine.attempt(0, 0).sent_at == t(2)
    assert engine.n.due_at == t(17)

    assert sends(engine.tick(t(15))) == []  # 15 minutes after it was due: too early
    assert sends(engine.tick(t(16, seconds=59))) == []
    second = only_send(engine.tick(t(17)))
    assert (second.pass_, second.step, second.channel) == (0, 1, "email")


def test_wait_runs_from_the_send_after_a_quiet_hours_deferral() -> None:
    """A step held by quiet hours waits from when it finally went out."""
    night = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)
    morning = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
    engine = Engine(make_notification(make_plan("sms", "email", quiet_hours=NIGHT), at=night))
    assert sends(engine.tick(night)) == []
    assert engine.n.due_at == morning
    first = only_send(engine.tick(morning))
    engine.sent(first, morning + timedelta(seconds=5))
    assert engine.n.due_at == morning + timedelta(minutes=15, seconds=5)


# --- skip ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "recipient", "reason"),
    [
        (Facts({"email": Medium.EMAIL}), None, "no channel named 'sms' is configured"),
        (Facts(MEDIA, unavailable={"sms": "bad credentials"}), None, "bad credentials"),
        (Facts(MEDIA), Recipient(id="r", email=EMAIL), "no phone"),
        (Facts(MEDIA, opted_out=frozenset({Medium.SMS})), None, "opted out of sms"),
    ],
    ids=["not-configured", "unavailable", "no-address", "opted-out"],
)
def test_skip_records_the_reason_and_tries_the_next_step_at_once(
    facts: Facts, recipient: Recipient | None, reason: str
) -> None:
    """An unusable step is SKIPPED with a reason naming why; the next is sent without a wait."""
    engine = Engine(make_notification(make_plan("sms", "email"), recipient), facts)
    decision = engine.tick(T0)

    skipped = engine.attempt(0, 0)
    assert skipped.status is AttemptStatus.SKIPPED
    assert skipped.error is not None
    assert reason in skipped.error
    email = only_send(decision)
    assert (email.pass_, email.step, email.channel, email.created_at) == (0, 1, "email", T0)
    assert engine.n.status is Status.ACTIVE


def test_skip_of_every_step_of_every_pass_fails_the_notification() -> None:
    """Nothing could be attempted in any pass: FAILED, with nothing sent and nothing due."""
    recipient = Recipient(id="r", email=EMAIL)  # no phone for sms or voice
    engine = Engine(make_notification(make_plan("sms", "voice", repeat=1), recipient))
    decision = engine.tick(T0)

    assert sends(decision) == []
    assert engine.n.status is Status.FAILED
    assert engine.n.due_at is None
    assert engine.n.finished_at == T0
    assert [(a.pass_, a.step, a.status) for a in engine.n.attempts] == [
        (0, 0, AttemptStatus.SKIPPED),
        (0, 1, AttemptStatus.SKIPPED),
        (1, 0, AttemptStatus.SKIPPED),
        (1, 1, AttemptStatus.SKIPPED),
    ]
    assert kinds(decision)[-1] is EventKind.FAILED


# --- early escalation ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [AttemptStatus.UNDELIVERED, AttemptStatus.FAILED])
def test_early_escalation_on_a_failed_status_of_the_current_attempt(status: AttemptStatus) -> None:
    """UNDELIVERED/FAILED on the current attempt makes it due now; the next Tick moves on."""
    engine, first = started(make_plan("sms", "email"))
    assert engine.n.due_at == t(15)

    decision = engine(StatusUpdate(first.id, status, error="30003 unreachable"), t(3))
    assert sends(decision) == []
    assert engine.n.due_at == t(3)
    assert engine.attempt(0, 0).status is status

    second = only_send(engine.tick(t(3)))
    assert (second.step, second.channel) == (1, "email")


def test_early_escalation_ignores_a_failure_of_an_earlier_attempt() -> None:
    """A late bounce of a previous step does not cut the current step's wait short."""
    engine, first = started(make_plan("sms", "email"))
    second = only_send(engine.tick(t(15)))
    engine.sent(second, t(15))
    assert engine.n.due_at == t(30)

    engine(StatusUpdate(first.id, AttemptStatus.UNDELIVERED), t(20))
    assert engine.attempt(0, 0).status is AttemptStatus.UNDELIVERED
    assert engine.n.due_at == t(30)


def test_early_escalation_on_a_permanent_send_error_in_the_same_decision() -> None:
    """SendFailed PERMANENT fails the attempt and sends the next step in the same decision."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    decision = engine(SendFailed(first.id, Failure.PERMANENT, "21211 invalid number"), t(1))

    assert engine.attempt(0, 0).status is AttemptStatus.FAILED
    assert engine.attempt(0, 0).error == "21211 invalid number"
    second = only_send(decision)
    assert (second.step, second.channel, second.created_at) == (1, "email", t(1))


# --- send failures ------------------------------------------------------------------------


def test_send_failure_transient_with_retry_at_reattempts_the_same_step() -> None:
    """TRANSIENT with retry_at: the same (pass, step) is tried again then, as reattempt=1."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    decision = engine(SendFailed(first.id, Failure.TRANSIENT, "503", retry_at=t(10)), t(1))

    assert sends(decision) == []
    assert engine.n.due_at == t(10)
    assert sends(engine.tick(t(9))) == []

    again = only_send(engine.tick(t(10)))
    assert (again.pass_, again.step, again.reattempt, again.channel) == (0, 0, 1, "sms")
    earlier = engine.attempt(0, 0, reattempt=0)
    assert earlier.status is AttemptStatus.FAILED
    assert earlier.retry_at == t(10)


def test_send_failure_transient_without_retry_at_moves_on() -> None:
    """TRANSIENT without retry_at (policy spent): the attempt failed, escalation moves on."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    decision = engine(SendFailed(first.id, Failure.TRANSIENT, "timeout", tries=4), t(1))

    assert engine.attempt(0, 0).status is AttemptStatus.FAILED
    assert engine.attempt(0, 0).retry_at is None
    assert engine.attempt(0, 0).tries == 4
    assert only_send(decision).step == 1


def test_send_failure_rate_limited_reschedules_the_same_step() -> None:
    """RATE_LIMITED with retry_at re-schedules the same step for then."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    decision = engine(SendFailed(first.id, Failure.RATE_LIMITED, "429", retry_at=t(2)), T0)

    assert sends(decision) == []
    assert engine.n.due_at == t(2)
    again = only_send(engine.tick(t(2)))
    assert (again.pass_, again.step, again.reattempt) == (0, 0, 1)


def test_a_rate_limit_asking_for_no_delay_is_reattempted_a_second_later_at_the_earliest() -> None:
    """A ``retry_at`` of now or earlier (``Retry-After: 0``, a reset gone by) is no tight loop."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    decision = engine(SendFailed(first.id, Failure.RATE_LIMITED, "429", retry_at=t(-1)), T0)

    assert sends(decision) == []
    assert engine.n.due_at == T0 + timedelta(seconds=1)
    assert engine.attempt(0, 0).retry_at == T0 + timedelta(seconds=1)
    assert sends(engine.tick(T0)) == []


def test_rate_limiting_of_a_step_ends_when_its_policy_has_no_tries_left() -> None:
    """Re-attempts stop at the policy's count of tries: the step fails as transient and
    escalation moves on, so a record's attempts stay bounded."""
    engine = Engine(make_notification(make_plan("sms", "email", retry=RetryPolicy(attempts=3))))
    now = T0
    attempt = only_send(engine.tick(now))
    for _ in range(2):
        engine(SendFailed(attempt.id, Failure.RATE_LIMITED, "429", retry_at=now), now)
        assert engine.n.due_at is not None
        now = engine.n.due_at
        attempt = only_send(engine.tick(now))
    decision = engine(SendFailed(attempt.id, Failure.RATE_LIMITED, "429", retry_at=now), now)

    sms = [a for a in engine.n.attempts if a.step == 0]
    assert [(a.reattempt, a.status, a.tries) for a in sms] == [
        (0, AttemptStatus.FAILED, 1),
        (1, AttemptStatus.FAILED, 1),
        (2, AttemptStatus.FAILED, 1),
    ]
    assert sms[-1].retry_at is None
    [logged] = [e for e in decision.events if e.attempt_id == sms[-1].id]
    assert logged.data["failure"] == Failure.TRANSIENT
    assert "retry policy spent" in (sms[-1].error or "")
    assert only_send(decision).channel == "email"


def test_rate_limiting_of_a_step_ends_when_its_delays_would_pass_the_policy_total() -> None:
    """A re-attempt that would come later than ``max_total_delay`` after the step's first try
    is not scheduled: the step fails now and the next one is tried."""
    retry = RetryPolicy(attempts=10, max_total_delay="10m")
    engine = Engine(make_notification(make_plan("sms", "email", retry=retry)))
    first = only_send(engine.tick(T0))
    engine(SendFailed(first.id, Failure.RATE_LIMITED, "429", retry_at=t(5)), T0)
    again = only_send(engine.tick(t(5)))
    decision = engine(SendFailed(again.id, Failure.RATE_LIMITED, "429", retry_at=t(11)), t(5))

    assert engine.attempt(0, 0, reattempt=1).retry_at is None
    assert only_send(decision).channel == "email"


def test_send_failure_unavailable_skips_the_attempt() -> None:
    """UNAVAILABLE (a configuration error) records the attempt as SKIPPED and moves on."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    decision = engine(SendFailed(first.id, Failure.UNAVAILABLE, "20003 authenticate"), t(1))

    assert engine.attempt(0, 0).status is AttemptStatus.SKIPPED
    assert only_send(decision).step == 1


def test_send_failure_opted_out_records_the_opt_out() -> None:
    """OPTED_OUT asks the shell to suppress the attempt's medium and address from now on."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    decision = engine(SendFailed(first.id, Failure.OPTED_OUT, "21610 unsubscribed"), t(1))

    assert RecordOptOut(Medium.SMS, PHONE) in decision.actions
    assert EventKind.OPTED_OUT in kinds(decision)
    assert engine.attempt(0, 0).status is AttemptStatus.FAILED
    assert only_send(decision).step == 1


# --- crash --------------------------------------------------------------------------------


def test_crash_leaves_a_sending_attempt_unknown_and_never_resends_it() -> None:
    """A SENDING attempt ticked again becomes UNKNOWN, is not resent, and waits from creation."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    # The runner died before reporting back; its lease lapsed and another runner ticks.
    decision = engine.tick(t(5))

    assert sends(decision) == []
    recovered = engine.attempt(0, 0)
    assert recovered.id == first.id
    assert recovered.status is AttemptStatus.UNKNOWN
    assert recovered.sent_at == first.created_at == T0
    assert engine.n.due_at == t(15)

    second = only_send(engine.tick(t(15)))
    assert (second.pass_, second.step, second.channel) == (0, 1, "email")
    assert [a.id for a in engine.n.attempts if (a.pass_, a.step) == (0, 0)] == [first.id]


def test_crash_unknown_attempt_is_reconciled_by_a_later_status_callback() -> None:
    """A status callback for an UNKNOWN attempt still updates it."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    engine.tick(t(5))
    engine(StatusUpdate(first.id, AttemptStatus.DELIVERED), t(6))
    assert engine.attempt(0, 0).status is AttemptStatus.DELIVERED
    assert engine.n.due_at == t(15)


# --- status callbacks ---------------------------------------------------------------------


def test_a_note_learnt_at_the_same_status_is_added_but_never_replaces_one() -> None:
    """Answered (no note), then the TwiML request's AnsweredBy says voicemail: the note is
    kept; a later report without one, or with another, changes nothing."""
    engine, call = started(make_plan("voice", "email"))
    engine(StatusUpdate(call.id, AttemptStatus.ENGAGED), t(1))
    engine(StatusUpdate(call.id, AttemptStatus.ENGAGED, error="voicemail"), t(1))
    assert engine.attempt(0, 0).error == "voicemail"
    for later in (None, "something else"):
        decision = engine(StatusUpdate(call.id, AttemptStatus.ENGAGED, error=later), t(2))
        assert decision.events == ()
    assert (engine.attempt(0, 0).status, engine.attempt(0, 0).error) == (
        AttemptStatus.ENGAGED,
        "voicemail",
    )


def test_status_callbacks_never_move_backwards() -> None:
    """DELIVERED then a late SENT: the SENT is ignored and nothing is logged."""
    engine, first = started(make_plan("sms", "email"))
    engine(StatusUpdate(first.id, AttemptStatus.DELIVERED), t(1))
    before = engine.n

    decision = engine(StatusUpdate(first.id, AttemptStatus.SENT), t(2))
    assert engine.attempt(0, 0).status is AttemptStatus.DELIVERED
    assert decision.events == ()
    assert decision.actions == ()
    assert engine.n == before


def test_status_callback_for_the_same_status_twice_logs_one_event() -> None:
    """A duplicated callback is recorded once."""
    engine, first = started(make_plan("sms", "email"))
    once = engine(StatusUpdate(first.id, AttemptStatus.DELIVERED), t(1))
    twice = engine(StatusUpdate(first.id, AttemptStatus.DELIVERED), t(1))
    assert kinds(once) == [EventKind.ATTEMPT_STATUS]
    assert twice.events == ()


def test_status_callbacks_never_move_backwards_when_one_beats_the_send_result() -> None:
    """A delivery receipt processed before the Sent event is not undone by it."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    first = only_send(engine.tick(T0))
    engine(StatusUpdate(first.id, AttemptStatus.DELIVERED), T0)
    engine.sent(first, t(0, seconds=1))
    assert engine.attempt(0, 0).status is AttemptStatus.DELIVERED


# --- repeat -------------------------------------------------------------------------------


def test_repeat_runs_the_chain_again_then_exhausts_after_the_last_wait() -> None:
    """repeat=1: two passes of every step, then EXHAUSTED once the final wait is over."""
    plan = make_plan(
        Step(channel="sms", template="t", wait="15m"),
        Step(channel="email", template="t", wait="30m"),
        repeat=1,
    )
    engine = Engine(make_notification(plan))
    now = T0
    for expected in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        attempt = only_send(engine.tick(now))
        assert (attempt.pass_, attempt.step) == expected
        engine.sent(attempt, now)
        assert engine.n.due_at is not None
        now = engine.n.due_at
    assert now == t(15 + 30 + 15 + 30)

    assert sends(engine.tick(now - timedelta(seconds=1))) == []
    assert engine.n.status is Status.ACTIVE
    decision = engine.tick(now)
    assert sends(decision) == []
    assert (decision.notification.status, decision.notification.due_at) == (Status.EXHAUSTED, None)
    assert kinds(decision) == [EventKind.EXHAUSTED]


# --- deadline -----------------------------------------------------------------------------


def test_deadline_reached_expires_the_notification() -> None:
    """A wait longer than the deadline is cut at it; the Tick then expires the notification."""
    plan = make_plan(Step(channel="sms", template="t", wait="2h"), "email", deadline="1h")
    engine, _ = started(plan)
    assert engine.n.due_at == engine.n.deadline_at == t(60)

    decision = engine.tick(t(60))
    assert sends(decision) == []
    assert engine.n.status is Status.EXPIRED
    assert engine.n.due_at is None
    assert kinds(decision) == [EventKind.EXPIRED]


def test_a_step_quiet_hours_hold_past_the_deadline_is_skipped_not_expired() -> None:
    """Quiet hours that would push the only send past the deadline: the step is skipped with
    that reason (so the notification fails, truthfully), never EXPIRED with nothing tried."""
    night = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)
    plan = make_plan("sms", quiet_hours=NIGHT, deadline="2h")
    engine = Engine(make_notification(plan, at=night))

    decision = engine.tick(night)
    assert sends(decision) == []
    assert engine.n.status is Status.FAILED
    [skipped] = engine.n.attempts
    assert skipped.status is AttemptStatus.SKIPPED
    assert skipped.error == "quiet hours until 08:00 UTC, past the deadline"


def test_a_step_held_past_the_deadline_is_skipped_and_the_walk_goes_on() -> None:
    """22:00 in New York, quiet 21:00-08:00, deadline 4 h, SMS then email: the SMS is skipped
    (it could only go at 08:00, after the deadline) and the email, which quiet hours do not
    hold, goes out at once."""
    night = datetime(2026, 6, 2, 2, 0, tzinfo=UTC)  # 22:00 EDT
    recipient = Recipient(id="r", phone=PHONE, email=EMAIL, timezone="America/New_York")
    plan = make_plan("sms", "email", quiet_hours=NIGHT, deadline="4h")
    engine = Engine(make_notification(plan, recipient, at=night))

    email = only_send(engine.tick(night))
    assert (email.step, email.channel) == (1, "email")
    sms = engine.attempt(0, 0)
    assert sms.status is AttemptStatus.SKIPPED
    assert sms.error == "quiet hours until 08:00 America/New_York, past the deadline"
    engine.sent(email, night)
    engine.tick(night + timedelta(minutes=15))
    assert engine.n.status is Status.EXHAUSTED


def test_a_step_quiet_hours_release_before_the_deadline_is_held_not_skipped() -> None:
    """Held until 08:00 with the deadline at 08:01: wait and send, do not skip."""
    night = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)
    plan = make_plan("sms", "email", quiet_hours=NIGHT, deadline=timedelta(hours=10, minutes=1))
    engine = Engine(make_notification(plan, at=night))

    assert sends(engine.tick(night)) == []
    assert engine.n.attempts == ()
    assert engine.n.due_at == datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
    assert only_send(engine.tick(datetime(2026, 6, 2, 8, 0, tzinfo=UTC))).channel == "sms"


def test_a_step_quiet_hours_release_exactly_at_the_deadline_is_skipped() -> None:
    """The deadline ends the escalation at 08:00, so a send allowed from 08:00 never happens."""
    night = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)
    plan = make_plan("sms", "email", quiet_hours=NIGHT, deadline="10h")
    engine = Engine(make_notification(plan, at=night))

    assert only_send(engine.tick(night)).channel == "email"
    assert engine.attempt(0, 0).status is AttemptStatus.SKIPPED


def test_deadline_no_step_is_sent_after_it_when_a_send_fails_late() -> None:
    """A send that was started just before the deadline and fails after it escalates no further."""
    retry = RetryPolicy(max_total_delay="2h")  # the re-attempt 59 minutes on is allowed
    plan = make_plan(
        Step(channel="sms", template="t", wait="2h"), "email", deadline="1h", retry=retry
    )
    engine = Engine(make_notification(plan))
    first = only_send(engine.tick(T0))
    engine(SendFailed(first.id, Failure.TRANSIENT, "503", retry_at=t(59, seconds=59)), t(1))
    again = only_send(engine.tick(t(59, seconds=59)))
    # In-process retries took a few seconds and the deadline passed meanwhile.
    decision = engine(SendFailed(again.id, Failure.PERMANENT, "gave up"), t(60, seconds=5))
    assert sends(decision) == []


# --- quiet hours --------------------------------------------------------------------------


def test_quiet_hours_use_the_recipient_time_zone_over_the_plan_time_zone() -> None:
    """22:00 in New York (the recipient's) is quiet even though it is 11:00 in the plan's Tokyo."""
    now = datetime(2026, 6, 2, 2, 0, tzinfo=UTC)
    recipient = Recipient(id="r", phone=PHONE, timezone="America/New_York")
    plan = make_plan("sms", quiet_hours=NIGHT, timezone="Asia/Tokyo")
    engine = Engine(make_notification(plan, recipient, at=now))

    decision = engine.tick(now)
    assert sends(decision) == []
    assert EventKind.DEFERRED in kinds(decision)
    assert engine.n.due_at == datetime(2026, 6, 2, 8, 0, tzinfo=NEW_YORK)


def test_quiet_hours_use_the_plan_time_zone_when_the_recipient_has_none() -> None:
    """22:00 in Tokyo (the plan's zone) is quiet although it is 13:00 UTC: an email-only
    recipient without a zone has no number to infer one from."""
    now = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    night = QuietHours(start="21:00", end="08:00", media={Medium.EMAIL})
    plan = make_plan("email", quiet_hours=night, timezone="Asia/Tokyo")
    engine = Engine(make_notification(plan, Recipient(id="r", email=EMAIL), at=now))

    assert sends(engine.tick(now)) == []
    assert engine.n.due_at == datetime(2026, 6, 2, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert engine.n.due_at == datetime(2026, 6, 1, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("local", "held"),
    [
        (datetime(2026, 6, 1, 20, 59, 59, tzinfo=NEW_YORK), False),
        (datetime(2026, 6, 1, 21, 0, tzinfo=NEW_YORK), True),
        (datetime(2026, 6, 2, 7, 59, 59, tzinfo=NEW_YORK), True),
        (datetime(2026, 6, 2, 8, 0, tzinfo=NEW_YORK), False),
    ],
    ids=["before-start", "at-start", "just-before-end", "at-end"],
)
def test_quiet_hours_window_is_start_inclusive_end_exclusive(local: datetime, held: bool) -> None:
    """The window is [start, end): a Tick at exactly `end` local time sends."""
    now = local.astimezone(UTC)
    recipient = Recipient(id="r", phone=PHONE, timezone="America/New_York")
    engine = Engine(make_notification(make_plan("sms", quiet_hours=NIGHT), recipient, at=now))
    assert len(sends(engine.tick(now))) == (0 if held else 1)


def test_quiet_hours_do_not_hold_email_by_default() -> None:
    """Quiet hours apply to SMS and voice only unless configured otherwise."""
    night = datetime(2026, 6, 1, 23, 0, tzinfo=UTC)
    engine = Engine(make_notification(make_plan("email", quiet_hours=NIGHT), at=night))
    assert only_send(engine.tick(night)).channel == "email"


def test_quiet_hours_are_ignored_by_an_urgent_plan() -> None:
    """`urgent=True` sends texts and calls at night too."""
    night = datetime(2026, 6, 1, 23, 0, tzinfo=UTC)
    plan = make_plan("voice", quiet_hours=NIGHT, urgent=True)
    engine = Engine(make_notification(plan, at=night))
    assert only_send(engine.tick(night)).channel == "voice"


def test_quiet_hours_deferral_on_the_spring_forward_night() -> None:
    """New York, 2026-03-08: 08:00 is EDT (UTC-4), so the deferral ends at 12:00 UTC."""
    now = datetime(2026, 3, 7, 22, 0, tzinfo=NEW_YORK).astimezone(UTC)  # 22:00 EST
    expected = datetime(2026, 3, 8, 8, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert expected == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    recipient = Recipient(id="r", phone=PHONE, timezone="America/New_York")
    engine = Engine(make_notification(make_plan("sms", quiet_hours=NIGHT), recipient, at=now))

    assert sends(engine.tick(now)) == []
    assert engine.n.due_at == expected
    assert sends(engine.tick(expected - timedelta(seconds=1))) == []
    assert len(sends(engine.tick(expected))) == 1


def test_quiet_hours_deferral_on_the_fall_back_night() -> None:
    """New York, 2026-11-01: 08:00 is EST (UTC-5), so the deferral ends at 13:00 UTC."""
    now = datetime(2026, 10, 31, 22, 0, tzinfo=NEW_YORK).astimezone(UTC)  # 22:00 EDT
    expected = datetime(2026, 11, 1, 8, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert expected == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    recipient = Recipient(id="r", phone=PHONE, timezone="America/New_York")
    engine = Engine(make_notification(make_plan("sms", quiet_hours=NIGHT), recipient, at=now))

    assert sends(engine.tick(now)) == []
    assert engine.n.due_at == expected
    assert sends(engine.tick(expected - timedelta(seconds=1))) == []
    assert len(sends(engine.tick(expected))) == 1


@pytest.mark.parametrize(
    ("quiet", "now", "expected"),
    [
        (NIGHT, datetime(2026, 6, 1, 16, 0, tzinfo=UTC), None),  # 12:00 EDT
        (NIGHT, datetime(2026, 6, 2, 1, 0, tzinfo=UTC), datetime(2026, 6, 2, 12, 0, tzinfo=UTC)),
        (NIGHT, datetime(2026, 6, 2, 6, 0, tzinfo=UTC), datetime(2026, 6, 2, 12, 0, tzinfo=UTC)),
        (NIGHT, datetime(2026, 6, 2, 12, 0, tzinfo=UTC), None),  # 08:00 EDT exactly
        (
            QuietHours(start="12:00", end="13:30"),
            datetime(2026, 6, 1, 16, 15, tzinfo=UTC),  # 12:15 EDT
            datetime(2026, 6, 1, 17, 30, tzinfo=UTC),
        ),
        (
            # fall back: 01:30 happens twice; the first one (EDT) is already outside 00:30-01:30
            QuietHours(start="00:30", end="01:30"),
            datetime(2026, 11, 1, 4, 45, tzinfo=UTC),  # 00:45 EDT
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        ),
        (
            # ... and the hour repeats, so 01:10 EST is quiet again until 01:30 EST
            QuietHours(start="00:30", end="01:30"),
            datetime(2026, 11, 1, 6, 10, tzinfo=UTC),
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        ),
    ],
    ids=["day", "at-start", "after-midnight", "at-end", "daytime-window", "overlap", "repeat"],
)
def test_quiet_until_gives_the_first_instant_outside_the_window(
    quiet: QuietHours, now: datetime, expected: datetime | None
) -> None:
    """`quiet_until` returns None outside the window, else the first instant after it."""
    assert quiet_until(quiet, NEW_YORK, now) == expected


def test_quiet_until_when_the_end_falls_in_the_spring_forward_gap() -> None:
    """On 2026-03-08 New York skips 02:00-03:00, so a 01:30-02:30 window ends at 03:00 EDT."""
    quiet = QuietHours(start="01:30", end="02:30")
    now = datetime(2026, 3, 8, 6, 45, tzinfo=UTC)  # 01:45 EST
    assert quiet_until(quiet, NEW_YORK, now) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


# --- acknowledgement ----------------------------------------------------------------------


def test_acknowledgement_first_one_wins() -> None:
    """A second Ack is only logged as REPLY_RECORDED; the first choice stays."""
    engine, _ = started(make_plan("sms", "email"))
    first = engine(Ack(via="sms", choice="1"), t(3))
    assert kinds(first) == [EventKind.ACKNOWLEDGED]
    assert (engine.n.status, engine.n.choice, engine.n.acknowledged_at) == (
        Status.ACKNOWLEDGED,
        "1",
        t(3),
    )

    second = engine(Ack(via="api", choice="2"), t(4))
    assert kinds(second) == [EventKind.REPLY_RECORDED]
    assert second.actions == ()
    assert (engine.n.choice, engine.n.acknowledged_via, engine.n.acknowledged_at) == (
        "1",
        "sms",
        t(3),
    )


def test_acknowledgement_stops_all_pending_steps() -> None:
    """Nothing more of this notification is sent after it was acknowledged."""
    engine, _ = started(make_plan("sms", "email", "voice"))
    engine(Ack(via="api"), t(3))
    assert engine.n.due_at is None
    assert sends(engine.tick(t(60))) == []
    assert engine.n.status is Status.ACKNOWLEDGED


def exhausted() -> Engine:
    engine, _ = started(
        make_plan("sms", follow_ups=[FollowUp(after="1d", channel="sms", template="f")])
    )
    engine.tick(t(15))
    assert engine.n.status is Status.EXHAUSTED
    return engine


def expired() -> Engine:
    plan = make_plan(
        Step(channel="sms", template="t", wait="2h"),
        deadline="15m",
        follow_ups=[FollowUp(after="1d", channel="sms", template="f")],
    )
    engine, _ = started(plan)
    engine.tick(t(15))
    assert engine.n.status is Status.EXPIRED
    return engine


@pytest.mark.parametrize("finished", [exhausted, expired])
def test_acknowledgement_after_the_end_within_grace_counts(finished: Callable[[], Engine]) -> None:
    """An Ack within plan.grace of EXHAUSTED/EXPIRED acknowledges and starts follow-ups."""
    engine = finished()
    assert engine.n.finished_at == t(15)
    late = t(15) + timedelta(days=6)
    decision = engine(Ack(via="api", choice="2"), late)

    assert engine.n.status is Status.ACKNOWLEDGED
    assert engine.n.choice == "2"
    assert kinds(decision) == [EventKind.ACKNOWLEDGED, EventKind.FOLLOW_UP_STARTED]
    assert [a for a in decision.actions if isinstance(a, StartFollowUp)] == [
        StartFollowUp(engine.n.plan.follow_ups[0], late + timedelta(days=1))
    ]


@pytest.mark.parametrize("finished", [exhausted, expired])
def test_acknowledgement_after_grace_is_only_recorded(finished: Callable[[], Engine]) -> None:
    """Past plan.grace the reply is logged as REPLY_RECORDED and nothing else changes."""
    engine = finished()
    before = engine.n
    decision = engine(Ack(via="api", choice="1"), t(15) + timedelta(days=7, seconds=1))

    assert kinds(decision) == [EventKind.REPLY_RECORDED]
    assert decision.actions == ()
    assert engine.n == before


def test_acknowledgement_of_a_cancelled_notification_is_only_recorded() -> None:
    """A CANCELLED notification cannot be acknowledged, however soon the reply comes."""
    engine, _ = started(make_plan("sms", "email"))
    engine(Cancel(reason="flight restored"), t(1))
    decision = engine(Ack(via="sms", choice="1"), t(2))

    assert kinds(decision) == [EventKind.REPLY_RECORDED]
    assert engine.n.status is Status.CANCELLED
    assert engine.n.choice is None


@pytest.mark.parametrize("status", [AttemptStatus.QUEUED, AttemptStatus.SENT])
def test_acknowledgement_cancels_a_ringing_call(status: AttemptStatus) -> None:
    """Ack hangs up a VOICE attempt still QUEUED/SENT with a provider id, and nothing else."""
    engine, text = started(make_plan("sms", "voice"))
    call = only_send(engine.tick(t(15)))
    engine.sent(call, t(15), status=status)
    ringing = engine.attempt(0, 1)
    assert ringing.provider_id is not None

    decision = engine(Ack(via="sms", choice="1", attempt_id=text.id), t(16))
    assert [a for a in decision.actions if isinstance(a, CancelCall)] == [CancelCall(ringing)]


def test_acknowledgement_leaves_a_delivered_call_and_the_call_it_came_from() -> None:
    """A finished call is not hung up; neither is the call whose keypress acknowledged."""
    engine, _ = started(make_plan("voice"))
    call = engine.attempt(0, 0).id
    engine(StatusUpdate(call, AttemptStatus.ENGAGED), t(1))
    decision = engine(Ack(via="voice", choice="1", attempt_id=call), t(2))
    assert not any(isinstance(a, CancelCall) for a in decision.actions)

    engine, _ = started(make_plan("voice"))
    engine(StatusUpdate(engine.attempt(0, 0).id, AttemptStatus.DELIVERED), t(1))
    decision = engine(Ack(via="sms", choice="1"), t(2))
    assert not any(isinstance(a, CancelCall) for a in decision.actions)


def test_acknowledgement_elsewhere_hangs_up_a_call_in_progress() -> None:
    """The customer answered by SMS while the call was talking: the call is ended."""
    engine, _ = started(make_plan("voice"))
    engine(StatusUpdate(engine.attempt(0, 0).id, AttemptStatus.ENGAGED), t(1))
    decision = engine(Ack(via="sms", choice="1"), t(2))
    assert [a.attempt.id for a in decision.actions if isinstance(a, CancelCall)] == [
        engine.attempt(0, 0).id
    ]


def test_follow_ups_start_for_a_matching_choice_after_their_delay() -> None:
    """StartFollowUp only for when_choice equal to the choice or None; first due at ack + after."""
    refund = FollowUp(when_choice="2", after="3d", channel="voice", template="refund_check")
    anyone = FollowUp(after="1h", channel="email", template="survey")
    rebook = FollowUp(when_choice="1", after="1d", channel="sms", template="rebook_check")
    engine, _ = started(make_plan("sms", follow_ups=[refund, anyone, rebook]))
    decision = engine(Ack(via="sms", choice="2"), t(5))

    assert [a for a in decision.actions if isinstance(a, StartFollowUp)] == [
        StartFollowUp(refund, t(5) + timedelta(days=3)),
        StartFollowUp(anyone, t(5) + timedelta(hours=1)),
    ]


def test_follow_ups_without_a_choice_start_only_the_unconditional_ones() -> None:
    """An Ack with no choice starts the follow-ups with when_choice=None only."""
    refund = FollowUp(when_choice="2", after="3d", channel="voice", template="refund_check")
    anyone = FollowUp(after="1h", channel="email", template="survey")
    engine, _ = started(make_plan("sms", follow_ups=[refund, anyone]))
    decision = engine(Ack(via="email"), t(5))
    assert [a for a in decision.actions if isinstance(a, StartFollowUp)] == [
        StartFollowUp(anyone, t(5) + timedelta(hours=1))
    ]


# --- cancel -------------------------------------------------------------------------------


@pytest.mark.parametrize("active", [False, True], ids=["pending", "active"])
def test_cancel_ends_a_pending_or_active_notification(active: bool) -> None:
    """Cancel → CANCELLED, nothing due, a CANCELLED event with the reason."""
    engine = Engine(make_notification(make_plan("sms", "email")))
    if active:
        engine.sent(only_send(engine.tick(T0)), T0)
    decision = engine(Cancel(reason="flight restored"), t(1))

    assert engine.n.status is Status.CANCELLED
    assert engine.n.due_at is None
    assert engine.n.finished_at == t(1)
    assert [(e.kind, e.data) for e in decision.events] == [
        (EventKind.CANCELLED, {"reason": "flight restored"})
    ]
    assert sends(engine.tick(t(30))) == []


def test_cancel_twice_does_nothing_the_second_time() -> None:
    """A second Cancel neither logs nor changes anything."""
    engine, _ = started(make_plan("sms", "email"))
    engine(Cancel(), t(1))
    before = engine.n
    decision = engine(Cancel(reason="again"), t(2))
    assert decision.actions == ()
    assert engine.n == before


# --- terminal -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [s for s in Status if s.is_terminal])
def test_tick_on_a_terminal_notification_only_clears_due_at(status: Status) -> None:
    """A stray Tick of a finished notification sends and logs nothing; it just clears due_at."""
    engine = Engine(make_notification(make_plan("sms")).model_copy(update={"status": status}))
    decision = engine.tick(t(1))

    assert decision.actions == ()
    assert decision.events == ()
    assert engine.n.due_at is None
    assert engine.n.status is status
    assert engine.n.attempts == ()


# --- attention ------------------------------------------------------------------------------


def attentions(decision: Decision) -> list[OpenAttention]:
    return [action for action in decision.actions if isinstance(action, OpenAttention)]


def test_an_unreached_ending_asks_for_a_person_and_cancelling_does_not() -> None:
    engine, _ = started(make_plan("sms"))
    ended = engine.tick(t(15))
    assert engine.n.status is Status.EXHAUSTED
    assert attentions(ended) == [OpenAttention(AttentionReason.UNREACHED)]
    assert attentions(engine.tick(t(30))) == []  # asked once, at the ending

    engine, _ = started(make_plan("sms"))
    assert attentions(engine(Cancel("flight restored"), t(1))) == []


def test_a_handoff_choice_acknowledges_and_asks_for_a_person() -> None:
    plan = Plan(
        name="p",
        steps=[Step(channel="sms", template="t")],
        options=[Option(key="1", label="Fine"), Option(key="2", label="Not yet", handoff=True)],
    )
    engine, _ = started(plan)
    acked = engine(Ack(via="sms", choice="2"), t(1))
    assert engine.n.status is Status.ACKNOWLEDGED
    assert attentions(acked) == [OpenAttention(AttentionReason.HANDOFF, "chose 2: Not yet")]
    engine, _ = started(plan)
    assert attentions(engine(Ack(via="sms", choice="1"), t(1))) == []
    assert attentions(engine(Ack(via="sms", choice="2"), t(2))) == []  # the first answer won


def test_a_reply_that_matches_nothing_is_kept_and_asks_for_a_person() -> None:
    engine, _ = started(make_plan("sms", "email"))
    text = "my bag is lost " * 20
    decision = engine(Reply(via="sms", text=text, unmatched=True), t(1))
    [asked] = attentions(decision)
    assert asked.reason is AttentionReason.NOT_UNDERSTOOD
    assert asked.detail is not None
    assert asked.detail.startswith("replied, not understood: 'my bag is lost my bag")
    assert asked.detail.endswith("…'")
    assert engine.n.last_reply == text
    assert engine.n.status is Status.ACTIVE  # the escalation goes on
    assert attentions(engine(Reply(via="sms", text="STOP"), t(2))) == []


def test_an_opt_out_is_noted_on_the_attempt_it_answered() -> None:
    engine, _ = started(make_plan("sms", "email"))
    engine(OptedOut(Medium.SMS, "opted out (replied STOP)"), t(1))
    assert engine.attempt(0, 0).error == "opted out (replied STOP)"
    assert engine.n.due_at == t(1)  # no point waiting on a medium they left
