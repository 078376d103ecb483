"""The Cape Air story, runnable anywhere: ``outreach demo``.

Six passengers of a cancelled flight, each with a scripted way of answering (or not), on an
embedded SQLite store and a virtual clock, so the story is the same at any time of day and
takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

from outreach._client import AsyncClient, StartRequest
from outreach._durations import parse_duration
from outreach._models import Event, Medium, Notification, Plan, Recipient
from outreach._settings import Settings
from outreach.channels import Message, Receipt
from outreach.testing import FakeClock, InMemoryChannel

DEMO_START = datetime.fromisoformat("2026-11-23T13:30:00+00:00")
CAMPAIGN = "9K1042-2026-11-23"


@dataclass(frozen=True)
class Persona:
    """How one passenger reacts: after ``delay``, acknowledges a ``medium`` with ``choice``."""

    recipient: Recipient
    description: str
    answers: Medium | None = None
    delay: str = "5m"
    choice: str | None = None


PASSENGERS = (
    Persona(
        Recipient(
            id="pax-01",
            phone="+16175550101",
            email="ann.lee@example.com",
            timezone="America/New_York",
            attributes={"name": "Ann Lee"},
        ),
        "replies 2 (refund) to the text after 4 minutes",
        Medium.SMS,
        "4m",
        "2",
    ),
    Persona(
        Recipient(
            id="pax-02",
            phone="+16175550102",
            email="bo.diaz@example.com",
            timezone="America/New_York",
            attributes={"name": "Bo Diaz"},
        ),
        "ignores the text, picks 'rebook' in the email 10 minutes later",
        Medium.EMAIL,
        "10m",
        "1",
    ),
    Persona(
        Recipient(
            id="pax-03",
            phone="+16175550103",
            email="chen.wu@example.com",
            timezone="America/New_York",
            attributes={"name": "Chen Wu"},
        ),
        "misses text and email, answers the call and presses 3 (taxi)",
        Medium.VOICE,
        "1m",
        "3",
    ),
    Persona(
        Recipient(
            id="pax-04",
            email="dana.k@example.com",
            timezone="America/New_York",
            attributes={"name": "Dana Kim"},
        ),
        "gave no phone number and never opens the email",
    ),
    Persona(
        Recipient(
            id="pax-05",
            phone="+13105550105",
            email="eli.r@example.com",
            timezone="America/Los_Angeles",
            attributes={"name": "Eli Ruiz"},
        ),
        "lives in Los Angeles (05:30 there): texted at 08:00 his time, replies 2 (refund)",
        Medium.SMS,
        "20m",
        "2",
    ),
    Persona(
        Recipient(
            id="pax-06",
            phone="+16175550106",
            email="finn.o@example.com",
            timezone="America/New_York",
            attributes={"name": "Finn Olsen"},
        ),
        "never answers anything",
    ),
)


@dataclass
class _Reply:
    at: datetime
    notification_id: str
    via: Medium
    choice: str | None


class _Passengers(InMemoryChannel):
    """A channel whose recipients are the personas: each message may schedule their answer."""

    def __init__(self, medium: Medium, clock: FakeClock, replies: list[_Reply]) -> None:
        super().__init__(medium, name=str(medium))
        self._clock = clock
        self._replies = replies
        self._by_address = {
            address: persona
            for persona in PASSENGERS
            if (address := persona.recipient.address(medium)) is not None
        }

    async def send(self, message: Message) -> Receipt:
        receipt = await super().send(message)
        persona = self._by_address.get(message.to)
        if persona is not None and persona.answers is message.medium:
            delay = parse_duration(persona.delay)
            self._replies.append(
                _Reply(
                    self._clock.now() + delay,
                    message.notification_id,
                    message.medium,
                    persona.choice,
                )
            )
        return receipt


@dataclass
class Story:
    """What happened: every notification of the campaign (with follow-ups) and the event log."""

    plan: Plan
    notifications: list[Notification]
    events: list[Event]
    started: datetime
    personas: dict[str, Persona] = field(default_factory=dict)


def demo_plan() -> Plan:
    """The plan shipped with the demo (``outreach/demo/plan.toml``)."""
    return Plan.load(Path(str(resources.files("outreach.demo") / "plan.toml")))


def templates_dir() -> str:
    """The demo's templates, shipped as package data."""
    return str(resources.files("outreach.demo") / "templates")


async def run_story(
    store: str, *, on_step: Callable[[datetime], None] | None = None, until: str = "4d"
) -> Story:
    """Play the story on ``store`` from ``DEMO_START`` for ``until`` of virtual time."""
    clock = FakeClock(DEMO_START)
    replies: list[_Reply] = []
    channels = {medium.value: _Passengers(medium, clock, replies) for medium in Medium}
    settings = Settings(secret_key="demo-secret-key", store=store)
    plan = demo_plan()
    end = DEMO_START + parse_duration(until)
    async with AsyncClient(
        store=store, channels=channels, templates=templates_dir(), clock=clock, settings=settings
    ) as ox:
        await ox.start_many(
            plan,
            [StartRequest(p.recipient, key=f"{CAMPAIGN}/{p.recipient.id}") for p in PASSENGERS],
            context={"flight": "9K 1042"},
            campaign=CAMPAIGN,
        )
        while True:
            await ox.run_due()
            for reply in [r for r in replies if r.at <= clock.now()]:
                replies.remove(reply)
                await ox.acknowledge(reply.notification_id, via=reply.via, choice=reply.choice)
            if on_step is not None:
                on_step(clock.now())
            upcoming = [r.at for r in replies]
            due = await ox.store.next_due()
            if due is not None:
                upcoming.append(due)
            upcoming = [t for t in upcoming if t <= end]
            if not upcoming:
                break
            clock.set(max(min(upcoming), clock.now()))
        order = {p.recipient.id: i for i, p in enumerate(PASSENGERS)}
        notifications = sorted(
            await ox.list(campaign=CAMPAIGN),
            key=lambda n: (n.parent_id is not None, order[n.recipient.id]),
        )
        events = [event async for event in ox.events()]
    return Story(
        plan=plan,
        notifications=notifications,
        events=events,
        started=DEMO_START,
        personas={p.recipient.id: p for p in PASSENGERS},
    )


def never_reached_reason(notification: Notification) -> str:
    """Why a passenger was not reached, from their attempts."""
    problems = sorted({a.error for a in notification.attempts if a.error})
    tried = [a.channel for a in notification.attempts if a.sent_at is not None]
    reason = f"no answer to {', '.join(tried)}" if tried else "nothing could be sent"
    return "; ".join([reason, *problems])


__all__ = ["DEMO_START", "PASSENGERS", "Persona", "Story", "demo_plan", "run_story"]
