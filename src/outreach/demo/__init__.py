"""The Cape Air story, runnable anywhere: ``outreach demo``.

Six passengers of a cancelled flight, each a simulated customer with their own way of
answering (or not); a refund that never came hands one of them to a person, and the duty
agent is paged until they take the case (by SMS); the next day, the passenger never reached
gets an apology that needs no answer (``until="delivered"``). Everything real runs: the SQLite
store, the Twilio and SendGrid adapters talking HTTP to the loopback
:class:`~outreach.testing.ProviderSimulator`, and the webhooks app receiving its signed
callbacks. Only time is virtual, so the story is the same at any hour and takes seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from outreach._client import AsyncClient
from outreach._durations import parse_duration
from outreach._models import (
    Attention,
    AttentionReason,
    Event,
    Notification,
    Plan,
    Recipient,
    StartRequest,
    Step,
)
from outreach._paging import Paging, page_campaign
from outreach._sandbox import Sandbox
from outreach._simulator import CallBehaviour, EmailBehaviour, Persona, SmsBehaviour

DEMO_START = datetime.fromisoformat("2026-11-23T13:30:00+00:00")
CAMPAIGN = "9K1042-2026-11-23"
APOLOGY_CAMPAIGN = f"{CAMPAIGN}-apology"
APOLOGY_AFTER = timedelta(days=1)
"""When the apology goes out, from the start of the story."""
APOLOGY_TO = "pax-04"


@dataclass(frozen=True)
class Passenger:
    """A recipient and the simulated customer behind their phone and mailbox."""

    recipient: Recipient
    description: str
    persona: Persona


def _passenger(
    number: int, name: str, zone: str, description: str, *, phone: str | None = None, **persona: Any
) -> Passenger:
    email = f"{name.split()[0].lower()}@example.com"
    recipient = Recipient(
        id=f"pax-{number:02d}", phone=phone, email=email, timezone=zone, attributes={"name": name}
    )
    return Passenger(
        recipient, description, Persona(phone=phone, email=email, name=name, **persona)
    )


PASSENGERS = (
    _passenger(
        1,
        "Ann Lee",
        "America/New_York",
        "replies 2 (refund) to the text; 3 days later the refund has not come: presses 2",
        phone="+16175550101",
        on_sms=SmsBehaviour(reply="2", reply_after="4m"),
        on_call=CallBehaviour(answer="human", press="2"),
    ),
    _passenger(
        2,
        "Bo Diaz",
        "America/New_York",
        "picks 'rebook' in the email, then texts 'my bag is lost, call me'",
        phone="+16175550102",
        on_sms=SmsBehaviour(reply="my bag is lost, call me", reply_after="1h"),
        on_email=EmailBehaviour(choose="1", clicks_after="8m"),
    ),
    _passenger(
        3,
        "Chen Wu",
        "America/New_York",
        "misses text and email, answers the call, presses 3",
        phone="+16175550103",
        on_call=CallBehaviour(answer="human", press="3"),
    ),
    _passenger(
        4,
        "Dana Kim",
        "America/New_York",
        "gave a landline and never reads her email",
        phone="+16175550104",
        landline=True,
        on_call=CallBehaviour(answer="no-answer"),
    ),
    _passenger(
        5,
        "Eli Ruiz",
        "America/Los_Angeles",
        "in Los Angeles (05:30 there): texted at 08:00; his refund arrives",
        phone="+13105550105",
        on_sms=SmsBehaviour(reply="refund", reply_after="20m"),
        on_call=CallBehaviour(answer="human", press="1"),
    ),
    _passenger(
        6,
        "Finn Olsen",
        "America/New_York",
        "mailbox bounces, voicemail takes the call",
        phone="+16175550106",
        on_email=EmailBehaviour(delivery="bounce"),
        on_call=CallBehaviour(answer="voicemail"),
    ),
)


DUTY_AGENT = Recipient(
    id="duty-agent",
    phone="+16175550190",
    email="duty@capeair.example",
    timezone="America/New_York",
    attributes={"name": "Sam Ortiz"},
)
"""Who is on duty: paged when a passenger hands over to a person and nobody takes it."""
DUTY_PERSONA = Persona(
    phone=DUTY_AGENT.phone,
    email=DUTY_AGENT.email,
    name="Sam Ortiz",
    on_sms=SmsBehaviour(reply="TAKE", reply_after="4m"),
)
PAGE_TEMPLATE = "page"
"""The notice the duty agent is paged with (its templates see the paging context)."""
PAGING = Paging(
    plan=Plan(
        name="page-duty-agent",
        steps=[
            Step(channel="sms", template=PAGE_TEMPLATE, wait="5m"),
            Step(channel="email", template=PAGE_TEMPLATE, wait="10m"),
            Step(channel="voice", template=PAGE_TEMPLATE, wait="10m"),
        ],
        urgent=True,  # on duty: quiet hours do not apply
    ),
    staff=[DUTY_AGENT],
    respond_within="15m",
    reasons=[AttentionReason.HANDOFF],
)
"""Handoffs page the duty agent after 15 minutes untaken: SMS, then email, then a call."""


@dataclass
class Story:
    """What happened: every notification of the campaign (with follow-ups), the event log,
    who needs a person (the open attention records) and the pages sent to staff for them."""

    plan: Plan
    notifications: list[Notification]
    events: list[Event]
    started: datetime
    passengers: dict[str, Passenger] = field(default_factory=dict)
    attention: list[Attention] = field(default_factory=list)
    notices: list[Notification] = field(default_factory=list)
    """Notices that need no answer (the apology), apart from the campaign."""
    pages: list[Notification] = field(default_factory=list)


def demo_plan() -> Plan:
    """The plan shipped with the demo (``outreach/demo/plan.toml``)."""
    return Plan.load(Path(str(resources.files("outreach.demo") / "plan.toml")))


def apology_plan() -> Plan:
    """The apology sent the day after (``outreach/demo/apology.toml``): until delivered."""
    return Plan.load(Path(str(resources.files("outreach.demo") / "apology.toml")))


def templates_dir() -> str:
    """The demo's templates, shipped as package data."""
    return str(resources.files("outreach.demo") / "templates")


StepHook = Callable[[datetime, AsyncClient], Awaitable[None]]


async def run_story(store: str, *, until: str = "4d", on_step: StepHook | None = None) -> Story:
    """Play the story on ``store`` from ``DEMO_START`` for ``until`` of virtual time; a day
    in, the passenger never reached gets the apology.

    ``on_step`` is awaited after every moment something happened (a live view, a slower pace).
    """
    total: timedelta = parse_duration(until)
    async with Sandbox(
        store=store,
        templates=templates_dir(),
        personas=[*(p.persona for p in PASSENGERS), DUTY_PERSONA],
        start=DEMO_START,
        attention=PAGING,
    ) as box:
        ox = box.client
        plan = demo_plan()
        await ox.start_many(
            plan,
            [StartRequest(p.recipient, key=f"{CAMPAIGN}/{p.recipient.id}") for p in PASSENGERS],
            context={"flight": "9K 1042"},
            campaign=CAMPAIGN,
        )
        await box.run_until(DEMO_START + min(total, APOLOGY_AFTER), on_step=on_step)
        if total > APOLOGY_AFTER:
            box.clock.set(max(box.clock.now(), DEMO_START + APOLOGY_AFTER))
            [dana] = [p.recipient for p in PASSENGERS if p.recipient.id == APOLOGY_TO]
            await ox.start(
                dana,
                apology_plan(),
                context={"flight": "9K 1042"},
                key=f"{CAMPAIGN}/{dana.id}/apology",
                campaign=APOLOGY_CAMPAIGN,
            )
            await box.run_until(DEMO_START + total, on_step=on_step)
        order = {p.recipient.id: i for i, p in enumerate(PASSENGERS)}
        notifications = sorted(
            await ox.list(campaign=CAMPAIGN),
            key=lambda n: (n.parent_id is not None, order[n.recipient.id]),
        )
        attention = await ox.attention(campaign=CAMPAIGN)
        return Story(
            plan=plan,
            notifications=notifications,
            events=[event async for event in ox.events()],
            started=DEMO_START,
            passengers={p.recipient.id: p for p in PASSENGERS},
            attention=attention,
            notices=await ox.list(campaign=APOLOGY_CAMPAIGN),
            pages=[n for a in attention for n in await ox.list(campaign=page_campaign(a.id))],
        )


__all__ = [
    "DEMO_START",
    "DUTY_AGENT",
    "PAGE_TEMPLATE",
    "PAGING",
    "PASSENGERS",
    "Passenger",
    "Story",
    "apology_plan",
    "demo_plan",
    "run_story",
]
