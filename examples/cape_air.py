"""Cape Air, from a backend: one passenger, three channels, an answer, a follow-up.

Runs as is (``python examples/cape_air.py``): the channels print to the terminal, the store is
a SQLite file in a temporary folder, and a virtual clock moves time so the whole story takes a
second. In a real service you would pass Twilio/SendGrid channels, the system clock (the
default) and call ``await ox.run()`` in a worker.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from outreach import AsyncClient, FollowUp, Option, Plan, QuietHours, Recipient, Step
from outreach.channels import Console
from outreach.testing import FakeClock

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
    follow_ups=[FollowUp(when_choice="2", after="3d", channel="voice", template="refund_check")],
)


async def main(store: str) -> str:
    clock = FakeClock("2026-11-23T14:00:00+00:00")
    channels = {"sms": Console("sms"), "email": Console("email"), "voice": Console("voice")}
    async with AsyncClient(store=store, channels=channels, templates=TEMPLATES, clock=clock) as ox:
        passenger = Recipient(
            id="pax-17",
            phone="+16175550123",
            email="ann@example.com",
            timezone="America/New_York",
        )
        n = await ox.start(
            passenger,
            PLAN,
            context={"flight": "9K 1042"},
            key="9K1042-2026-11-23/pax-17",
            campaign="9K1042-2026-11-23",
            metadata={"pnr": "QX7T2L"},
        )
        await ox.run_due()  # the text goes out
        clock.advance("15m")
        await ox.run_due()  # no answer: the email goes out
        await ox.acknowledge(n.id, via="email", choice="2")  # she picks a refund
        clock.advance("3d")
        await ox.run_due()  # the follow-up call checks the refund arrived
        n = await ox.get(key="9K1042-2026-11-23/pax-17")
        follow_up = await ox.get(key="9K1042-2026-11-23/pax-17/refund_check")
        call = follow_up.attempts[-1]
        return f"{n.status} (choice {n.choice}); follow-up {call.channel} {call.status}"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        print(asyncio.run(main(f"sqlite:///{Path(folder) / 'outreach.db'}")))
