"""The quick start: one passenger, a text, an email and a call (printed here), an answer."""

import asyncio

from outreach import AsyncClient, FollowUp, Option, Plan, QuietHours, Recipient, Step
from outreach.channels import Console

plan = Plan(
    name="flight-cancelled",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait="15m"),
        Step(channel="email", template="flight_cancelled", wait="30m"),
        Step(channel="voice", template="flight_cancelled", wait="1h"),
    ],
    options=[
        Option(key="1", label="Rebook me", keywords=["rebook"]),
        Option(key="2", label="Refund", keywords=["refund"]),
    ],
    deadline="24h",
    quiet_hours=QuietHours(start="21:00", end="08:00"),
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
            ),
        )
    ],
)
channels = {"sms": Console("sms"), "email": Console("email"), "voice": Console("voice")}


async def main() -> None:
    async with AsyncClient(
        store="sqlite:///outreach.db", channels=channels, templates="templates/"
    ) as ox:
        pax = Recipient(
            id="pax-17",
            phone="+16175550123",
            email="ann@example.com",
            timezone="America/New_York",
        )
        n = await ox.start(pax, plan, context={"flight": "9K 1042"}, key="9K1042/pax-17")
        await ox.run_due()  # sends what is due now; `await ox.run()` keeps going, in a worker
        n = await ox.acknowledge(n.id, via="api", choice="2")
        print(f"{n.key}: {n.status}, choice {n.choice}")


asyncio.run(main())
