"""The whole runner under random events: a real store, injected provider failures, acks,
cancellations and clock moves, checked against the promises a customer would notice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from outreach import AttemptStatus, Client, Option, Plan, QuietHours, Recipient, Status, Step
from outreach.channels import Message, Receipt
from outreach.exceptions import PermanentDeliveryError, RateLimited, TransientDeliveryError
from outreach.testing import FakeClock, InMemoryChannel

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ZONE = ZoneInfo("America/New_York")
QUIET = QuietHours(start="21:00", end="08:00")
PLAN = Plan(
    name="p",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait="15m"),
        Step(channel="email", template="flight_cancelled", wait="30m"),
        Step(channel="voice", template="flight_cancelled", wait="1h"),
    ],
    options=[Option(key="1", label="Rebook"), Option(key="2", label="Refund")],
    repeat=1,
    deadline="20h",
    quiet_hours=QUIET,
)
FAILURES = [
    TransientDeliveryError("503"),
    TransientDeliveryError("503", retry_after=timedelta(minutes=3)),
    RateLimited("429", retry_after=timedelta(seconds=30)),
    PermanentDeliveryError("21211"),
]


class Recording(InMemoryChannel):
    """Notes when each message went out, on the fake clock."""

    def __init__(self, name: str, clock: FakeClock, log: list[tuple[object, Message]]) -> None:
        super().__init__(name=name)
        self._clock = clock
        self._log = log

    async def send(self, message: Message) -> Receipt:
        receipt = await super().send(message)
        self._log.append((self._clock.now(), message))
        return receipt


class RunnerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock("2026-11-23T12:00:00+00:00")
        self.sent: list[tuple[object, Message]] = []
        self.channels = {
            name: Recording(name, self.clock, self.sent) for name in ("sms", "email", "voice")
        }
        self.ox = Client(
            store="memory://", channels=self.channels, templates=TEMPLATES, clock=self.clock
        )
        self.ids: list[str] = []
        self.closed_at: dict[str, object] = {}  # acknowledged or cancelled, and when

    def teardown(self) -> None:
        self.ox.close()

    @rule(count=st.integers(1, 3))
    def start(self, count: int) -> None:
        for _ in range(count):
            i = len(self.ids)
            person = Recipient(
                id=f"p{i}",
                phone=f"+1617555{i:04d}",
                email=f"p{i}@example.com",
                timezone="America/New_York",
            )
            n = self.ox.start(person, PLAN, context={"flight": "9K 1042"}, key=f"k{i}")
            self.ids.append(n.id)

    @rule(minutes=st.integers(0, 240))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        self.ox.run_due()

    @rule(
        channel=st.sampled_from(["sms", "email", "voice"]),
        failure=st.sampled_from(FAILURES),
        times=st.integers(1, 3),
    )
    def provider_fails(self, channel: str, failure: Exception, times: int) -> None:
        self.channels[channel].fail_next(times, error=failure)  # type: ignore[arg-type]

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), choice=st.sampled_from([None, "1", "2"]))
    def customer_answers(self, data: st.DataObject, choice: str | None) -> None:
        n = self.ox.acknowledge(data.draw(st.sampled_from(self.ids)), via="api", choice=choice)
        if n.status is Status.ACKNOWLEDGED:
            self.closed_at.setdefault(n.id, n.acknowledged_at)

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def airline_cancels(self, data: st.DataObject) -> None:
        n = self.ox.cancel(data.draw(st.sampled_from(self.ids)))
        if n.status is Status.CANCELLED:
            self.closed_at.setdefault(n.id, n.finished_at)

    @invariant()
    def nothing_goes_out_after_an_answer_or_a_cancellation(self) -> None:
        for when, message in self.sent:
            closed = self.closed_at.get(message.notification_id)
            assert closed is None or when <= closed  # type: ignore[operator]

    @invariant()
    def every_send_is_one_recorded_attempt(self) -> None:
        attempt_ids = [message.attempt_id for _, message in self.sent]
        assert len(attempt_ids) == len(set(attempt_ids))

    @invariant()
    def no_text_or_call_in_quiet_hours(self) -> None:
        for when, message in self.sent:
            if message.medium.value in ("sms", "voice"):
                assert not QUIET.contains(when.astimezone(ZONE).time())  # type: ignore[attr-defined]

    @invariant()
    def nothing_is_left_sending_between_runs(self) -> None:
        for n in self.ox.list(limit=100):
            assert all(a.status is not AttemptStatus.SENDING for a in n.attempts)
            if n.status.is_terminal:
                assert n.due_at is None


TestRunner = RunnerMachine.TestCase
TestRunner.settings = settings(max_examples=60, stateful_step_count=20, deadline=None)
