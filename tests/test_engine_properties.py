"""A hypothesis state machine over the pure engine: any events, any clock moves, the rules hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from outreach import AttemptStatus, Notification, Option, Plan, QuietHours, Recipient, Status, Step
from outreach._engine import (
    Ack,
    Cancel,
    Due,
    Facts,
    Failure,
    HandOver,
    Input,
    Reply,
    Send,
    SendFailed,
    Sent,
    State,
    StatusUpdate,
    Tick,
    decide,
)
from outreach._models import RUNGS, Medium, Until

ZONE = "America/New_York"
# Nights the clocks change in New York: spring forward 2026-03-08, fall back 2026-11-01.
STARTS = [
    datetime(2026, 3, 7, 22, 0, tzinfo=UTC),
    datetime(2026, 3, 8, 5, 30, tzinfo=UTC),
    datetime(2026, 10, 31, 23, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 5, 45, tzinfo=UTC),
    datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
    datetime(2026, 6, 2, 2, 0, tzinfo=UTC),  # 22:00 in New York: the night of the quiet-hours bug
]
QUIET = [
    QuietHours(start="21:00", end="08:00"),
    QuietHours(start="01:30", end="02:30"),  # ends inside the spring-forward gap
    QuietHours(start="00:30", end="01:30"),  # ends inside the fall-back overlap
]
MEDIA = {"sms": Medium.SMS, "email": Medium.EMAIL, "voice": Medium.VOICE}


def build_plan(
    quiet: QuietHours,
    repeat: int,
    deadline: int | None,
    waits: list[int],
    until: Until = "acknowledged",
) -> Plan:
    channels = ["sms", "email", "voice"]
    options = [Option(key="1", label="one"), Option(key="2", label="two")]
    return Plan(
        name="p",
        steps=[
            Step(channel=channels[i % 3], template="t", wait=timedelta(minutes=w))
            for i, w in enumerate(waits)
        ],
        options=[] if until == "delivered" else options,
        repeat=repeat,
        deadline=None if deadline is None else timedelta(hours=deadline),
        quiet_hours=quiet,
        until=until,
    )


# What an attempt's status may be before a receipt of each rung moves it up.
_BEFORE_DELIVERED = {AttemptStatus.SENDING, AttemptStatus.UNKNOWN, AttemptStatus.QUEUED}
_BEFORE_DELIVERED |= {AttemptStatus.SENT}
_BEFORE_ENGAGED = _BEFORE_DELIVERED | {AttemptStatus.DELIVERED}


def reaches_the_rung(n: Notification, event: Input) -> bool:
    """Whether ``event`` reaches the plan's ``until`` rung while ``n`` still escalates: an
    oracle written from the ladder's definition, not from the engine's code."""
    until = n.plan.until
    if until == "acknowledged" or n.status.is_terminal:
        return False
    if isinstance(event, Reply):
        return True  # a reply of any kind is engagement, and implies delivery
    if not isinstance(event, StatusUpdate):
        return False
    attempt = n.attempt(event.attempt_id)
    if attempt is None:
        return False
    if attempt.medium is Medium.VOICE:
        return event.person  # voicemail never counts; a person does
    if event.status is AttemptStatus.ENGAGED:
        return attempt.status in _BEFORE_ENGAGED
    return (
        until == "delivered"
        and event.status is AttemptStatus.DELIVERED
        and attempt.status in _BEFORE_DELIVERED
    )


class EngineMachine(RuleBasedStateMachine):
    """Feeds random events to one notification and checks the design's rules after each."""

    def __init__(self) -> None:
        super().__init__()
        self.n: Notification | None = None
        self.now = STARTS[0]
        self.sends: list[tuple[datetime, Medium, tuple[int, int, int]]] = []
        self.terminal_at: datetime | None = None
        self.opted_out: frozenset[Medium] = frozenset()
        self.in_flight: list[str] = []
        self.due: str | None = None  # an attempt the engine said is due, not yet handed over
        self.rung_reached = False  # the plan's ``until`` rung was reached (by the oracle)

    @initialize(
        start=st.sampled_from(STARTS),
        quiet=st.sampled_from(QUIET),
        repeat=st.integers(0, 2),
        deadline=st.one_of(st.none(), st.integers(1, 30)),
        waits=st.lists(st.integers(1, 180), min_size=1, max_size=4),
        has_phone=st.booleans(),
        until=st.sampled_from(RUNGS),
    )
    def create(
        self,
        start: datetime,
        quiet: QuietHours,
        repeat: int,
        deadline: int | None,
        waits: list[int],
        has_phone: bool,
        until: Until,
    ) -> None:
        plan = build_plan(quiet, repeat, deadline, waits, until)
        self.now = start
        self.n = Notification(
            id="n1",
            recipient=Recipient(
                id="r",
                phone="+16175550123" if has_phone else None,
                email="r@example.com",
                timezone=ZONE,
            ),
            plan=plan,
            created_at=start,
            updated_at=start,
            due_at=start,
            deadline_at=None if plan.deadline is None else start + plan.deadline,
        )

    def apply(self, event: Input) -> None:
        assert self.n is not None
        before = self.n
        reaches = reaches_the_rung(before, event)
        decision = decide(State(self.n, Facts(MEDIA, opted_out=self.opted_out)), event, self.now)
        self.n = decision.notification
        if reaches:
            # (g) reaching the plan's rung ends it with that status, at once
            self.rung_reached = True
            assert self.n.status is Status(self.n.plan.until)
            assert self.n.due_at is None
        # (e) a decision lists each attempt it created or changed, as it now stands (what the
        # store indexes for the webhooks)
        changed = {a.id for a in self.n.attempts if a != before.attempt(a.id)}
        assert changed <= {a.id for a in decision.attempts}
        assert all(a in self.n.attempts for a in decision.attempts)
        for action in decision.actions:
            if isinstance(action, Due):
                self.due = action.attempt.id
            if isinstance(action, Send):
                attempt = action.attempt
                # (a) nothing is sent once acknowledged, cancelled, delivered or engaged
                assert not before.status.is_terminal
                assert self.n.status is Status.ACTIVE
                # (g) nor once the plan's ``until`` rung was reached
                assert not self.rung_reached
                assert attempt.medium is not None
                self.sends.append(
                    (self.now, attempt.medium, (attempt.pass_, attempt.step, attempt.reattempt))
                )
                self.in_flight.append(attempt.id)
        if self.n.status.is_terminal and self.terminal_at is None:
            self.terminal_at = self.now

    @rule(minutes=st.integers(0, 24 * 60))
    def advance_and_tick(self, minutes: int) -> None:
        assert self.n is not None
        self.now += timedelta(minutes=minutes)
        if self.n.due_at is not None and self.n.due_at <= self.now:
            self.apply(Tick())

    @rule(minutes=st.integers(0, 3 * 24 * 60))
    def run_until(self, minutes: int) -> None:
        """Jump through due times like the runner does, answering every send at once."""
        assert self.n is not None
        end = self.now + timedelta(minutes=minutes)
        for _ in range(100):
            if self.due is not None:
                self.hand_over()
                continue
            if self.in_flight:
                self.apply(Sent(self.in_flight.pop(), provider_id="p"))
                continue
            if self.n.due_at is None or self.n.due_at > end:
                break
            self.now = max(self.now, self.n.due_at)
            self.apply(Tick())
        self.now = max(self.now, end)

    @precondition(lambda self: bool(self.in_flight))
    @rule(
        outcome=st.sampled_from([*Failure, "sent", "unknown"]),
        retry_minutes=st.one_of(st.none(), st.integers(-1, 120)),
    )
    def finish_send(self, outcome: str, retry_minutes: int | None) -> None:
        attempt_id = self.in_flight.pop(0)
        if outcome == "sent":
            self.apply(Sent(attempt_id, provider_id="p"))
        elif outcome == "unknown":
            self.apply(Sent(attempt_id, provider_id=None, status=AttemptStatus.UNKNOWN))
        else:
            delay = None if retry_minutes is None else timedelta(minutes=retry_minutes)
            retry_at = None if delay is None else self.now + delay
            self.apply(SendFailed(attempt_id, Failure(outcome), "boom", retry_at))

    @precondition(lambda self: self.due is not None)
    @rule()
    def hand_over(self) -> None:
        """Pacing and a free slot let the due attempt go (other events may have come first)."""
        assert self.due is not None
        due, self.due = self.due, None
        self.apply(HandOver(due))

    @precondition(lambda self: bool(self.in_flight) or self.due is not None)
    @rule()
    def crash(self) -> None:
        """The runner dies mid-send or before handing over; its lease lapses and another
        runner ticks."""
        self.in_flight.clear()
        self.due = None
        self.now += timedelta(minutes=5)
        self.apply(Tick())

    @precondition(lambda self: self.n is not None and bool(self.n.attempts))
    @rule(data=st.data(), status=st.sampled_from(list(AttemptStatus)))
    def status_callback(self, data: st.DataObject, status: AttemptStatus) -> None:
        assert self.n is not None
        attempt = data.draw(st.sampled_from(self.n.attempts))
        self.apply(StatusUpdate(attempt.id, status))

    @precondition(lambda self: self.n is not None and bool(self.n.attempts))
    @rule(data=st.data(), unmatched=st.booleans(), roll=st.integers(0, 4))
    def reply(self, data: st.DataObject, unmatched: bool, roll: int) -> None:
        """A reply that is not an answer (free text, a wrong key): engagement."""
        assert self.n is not None
        if roll == 0:
            attempt = data.draw(st.sampled_from(self.n.attempts))
            self.apply(Reply(via="sms", text="?", attempt_id=attempt.id, unmatched=unmatched))

    @precondition(
        lambda self: (
            self.n is not None
            and any(a.medium is Medium.VOICE and a.sent_at for a in self.n.attempts)
        )
    )
    @rule(data=st.data())
    def answered_by(self, data: st.DataObject) -> None:
        """A call is answered by a person (or, with the same status, by voicemail)."""
        assert self.n is not None
        calls = [a for a in self.n.attempts if a.medium is Medium.VOICE and a.sent_at]
        call = data.draw(st.sampled_from(calls))
        person = data.draw(st.booleans())
        note = None if person else "voicemail"
        self.apply(StatusUpdate(call.id, AttemptStatus.ENGAGED, note, person=person))

    @rule(choice=st.sampled_from([None, "1", "2"]), roll=st.integers(0, 4))
    def acknowledge(self, choice: str | None, roll: int) -> None:
        if roll == 0:  # customers rarely answer: let most runs reach the end of the plan
            self.apply(Ack(via="api", choice=choice))

    @rule(roll=st.integers(0, 9))
    def cancel(self, roll: int) -> None:
        if roll == 0:
            self.apply(Cancel())

    @rule()
    def opt_out_of_sms(self) -> None:
        self.opted_out = self.opted_out | {Medium.SMS}

    @invariant()
    def each_step_attempted_once_unless_reattempted(self) -> None:
        # (b) a (pass, step) is attempted again only as a recorded re-attempt
        seen = [key for _, _, key in self.sends]
        assert len(seen) == len(set(seen))
        if self.n is not None:
            for _, _, (pass_, step, reattempt) in self.sends:
                if reattempt:
                    earlier = [
                        a
                        for a in self.n.attempts
                        if (a.pass_, a.step, a.reattempt) == (pass_, step, reattempt - 1)
                    ]
                    assert earlier, "a re-attempt with no recorded earlier attempt"
                    assert earlier[0].status is AttemptStatus.FAILED

    @invariant()
    def reattempts_bounded_and_spaced_by_the_retry_policy(self) -> None:
        # (e) re-attempts of one step never outnumber its policy's tries, and each waits >= 1 s
        if self.n is None:
            return
        policy = self.n.plan.retry
        per_step: dict[tuple[int, int], int] = {}
        for attempt in self.n.attempts:
            key = (attempt.pass_, attempt.step)
            per_step[key] = per_step.get(key, 0) + 1
            if attempt.retry_at is not None:
                assert attempt.retry_at - attempt.updated_at >= timedelta(seconds=1)
        assert max(per_step.values(), default=0) <= policy.attempts

    @invariant()
    def no_call_or_text_in_quiet_hours(self) -> None:
        # (c) including the nights the clocks change
        if self.n is None:
            return
        quiet = self.n.plan.quiet_hours
        assert quiet is not None
        zone = ZoneInfo(ZONE)
        for when, medium, _ in self.sends:
            if medium in quiet.media:
                assert not quiet.contains(when.astimezone(zone).time()), when.astimezone(zone)

    @invariant()
    def terminal_after_deadline(self) -> None:
        # (d) once the deadline has passed and the notification was due, it is terminal
        n = self.n
        if n is None or n.deadline_at is None or self.now < n.deadline_at or self.in_flight:
            return
        if n.due_at is not None and n.due_at <= self.now:
            # What run_due would do now, decided on the side: checking must not change the run.
            after = decide(State(n, Facts(MEDIA, opted_out=self.opted_out)), Tick(), self.now)
            assert after.notification.status.is_terminal
            assert not any(isinstance(a, Send | Due) for a in after.actions)
        elif n.due_at is None:
            assert n.status.is_terminal

    @invariant()
    def due_never_after_deadline(self) -> None:
        n = self.n
        if n is not None and n.deadline_at is not None and n.due_at is not None:
            assert n.due_at <= n.deadline_at

    @invariant()
    def untried_never_left_waiting_for_the_deadline(self) -> None:
        # (f) quiet hours never expire a notification untried: while nothing was attempted,
        # there is always something to do before the deadline (a step held past it is skipped)
        n = self.n
        if n is None or n.status.is_terminal or n.attempts or n.deadline_at is None:
            return
        assert n.due_at is not None
        assert n.due_at < n.deadline_at, (n.due_at, n.deadline_at)

    @invariant()
    def terminal_means_nothing_due(self) -> None:
        if self.n is not None and self.n.status.is_terminal:
            assert self.n.due_at is None


TestEngine = EngineMachine.TestCase


@given(
    start=st.sampled_from(STARTS),
    quiet=st.sampled_from(QUIET),
    repeat=st.integers(0, 1),
    deadline=st.integers(1, 30),
    waits=st.lists(st.integers(1, 180), min_size=1, max_size=4),
    has_phone=st.booleans(),
)
def test_quiet_hours_never_expire_a_notification_untried(
    start: datetime,
    quiet: QuietHours,
    repeat: int,
    deadline: int,
    waits: list[int],
    has_phone: bool,
) -> None:
    """Run like a diligent runner (tick at every due time, every send accepted at once): an
    ``expired`` notification has always tried something. A step held past the deadline is
    skipped, and the walk reaches the steps quiet hours do not hold (email)."""
    plan = build_plan(quiet, repeat, deadline, waits)
    phone = "+16175550123" if has_phone else None
    n = Notification(
        id="n1",
        recipient=Recipient(id="r", phone=phone, email="r@example.com", timezone=ZONE),
        plan=plan,
        created_at=start,
        updated_at=start,
        due_at=start,
        deadline_at=start + timedelta(hours=deadline),
    )
    now = start
    for _ in range(200):
        decision = decide(State(n, Facts(MEDIA)), Tick(), now)
        n = decision.notification
        for action in decision.actions:
            if isinstance(action, Due):
                n = decide(State(n, Facts(MEDIA)), HandOver(action.attempt.id), now).notification
                n = decide(State(n, Facts(MEDIA)), Sent(action.attempt.id, "p"), now).notification
        if n.status.is_terminal:
            break
        assert n.due_at is not None
        now = max(now, n.due_at)
    assert n.status.is_terminal
    if n.status is Status.EXPIRED:
        assert any(a.status is not AttemptStatus.SKIPPED for a in n.attempts), n.attempts
