"""Cape Air, from a backend: one passenger, three channels, an answer, a follow-up.

Runs as is (``python examples/cape_air.py``): with no provider credentials it plays against the
local provider simulator (Twilio's and SendGrid's APIs on loopback, a simulated passenger who
answers the call and presses 2) on a virtual clock, so the whole story takes a second. In a
real service you build the same ``AsyncClient`` with ``TwilioSMS()``, ``SendGridEmail()`` and
``TwilioVoice()`` (they read ``OUTREACH_*``), keep the system clock, serve the webhooks
(``outreach serve``) and let ``await ox.run()`` drive the escalations.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from outreach import AsyncClient, FollowUp, Option, Plan, QuietHours, Recipient, Step
from outreach.testing import CallBehaviour, Persona, Sandbox

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

PLAN = Plan(
    name="flight-cancelled",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait="15m"),
        Step(channel="email", template="flight_cancelled", wait="30m"),
        Step(channel="voice", template="flight_cancelled", wait="1h"),
    ],
    options=[
        Option(key="1", label="Rebook me", keywords=["rebook"]),
        Option(key="2", label="Refund", keywords=["refund"]),
        Option(key="3", label="Taxi to my destination", keywords=["taxi"]),
    ],
    deadline="24h",
    quiet_hours=QuietHours(start="21:00", end="08:00"),
    # Three days after a refund, call to check it arrived; "2" (it did not) hands over to a
    # person: `await ox.attention()` lists the case, `await ox.resolve(...)` closes it.
    follow_ups=[
        FollowUp(
            when_choice="2",
            after="3d",
            name="refund_check",
            plan=Plan(
                name="refund-check",
                steps=[Step(channel="voice", template="refund_check")],
                options=[
                    Option(key="1", label="My refund arrived"),
                    Option(key="2", label="My refund has not arrived", handoff=True),
                ],
                quiet_hours=QuietHours(start="21:00", end="08:00"),
            ),
        )
    ],
)

PASSENGER = Recipient(
    id="pax-17", phone="+16175550123", email="ann@example.com", timezone="America/New_York"
)


async def notify(ox: AsyncClient) -> str:
    """What a backend does when a flight is cancelled: start, then let the runner work."""
    n = await ox.start(
        PASSENGER,
        PLAN,
        context={"flight": "9K 1042"},
        key="9K1042-2026-11-23/pax-17",
        campaign="9K1042-2026-11-23",
        metadata={"pnr": "QX7T2L"},
    )
    return n.id


async def main(store: str) -> str:
    """The story on the simulator; returns how it ended."""
    answers_the_call = Persona(
        phone=PASSENGER.phone,
        email=PASSENGER.email,
        on_call=CallBehaviour(answer="human", press="2"),
    )
    async with Sandbox(store=store, templates=TEMPLATES, personas=[answers_the_call]) as box:
        await notify(box.client)
        await box.run_until("4d")  # text, email, call, keypress; the refund check 3 days later
        n = await box.client.get(key="9K1042-2026-11-23/pax-17")
        follow_up = await box.client.get(key="9K1042-2026-11-23/pax-17/refund_check")
        channels = ", ".join(a.channel for a in n.attempts)
        call = follow_up.attempts[-1]
        return (
            f"{n.status} via {n.acknowledged_via} (choice {n.choice}) after {channels}; "
            f"follow-up {call.channel} {call.status}"
        )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        print(asyncio.run(main(f"sqlite:///{Path(folder) / 'outreach.db'}")))
