"""Notify every passenger of a cancelled flight, from a CSV file.

    python examples/notify_flight.py examples/passengers.csv --flight "9K 1042"

With Twilio and SendGrid credentials in the environment (``OUTREACH_TWILIO_*``,
``OUTREACH_SENDGRID_*``, ``OUTREACH_PUBLIC_URL``, ``OUTREACH_SECRET_KEY``), it starts the
escalations on the real store and leaves them to ``outreach serve``. Without credentials it
plays them against the local provider simulator on a virtual clock and prints what happened.
Bad rows are reported with their line number and skipped; the other passengers are notified.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from outreach import AsyncClient, Status
from outreach.campaigns import read_recipients, start_campaign
from outreach.demo import demo_plan
from outreach.testing import Persona, Sandbox, SmsBehaviour

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


async def notify(ox: AsyncClient, csv_path: Path, flight: str) -> int:
    """Start the plan for every good row; report the bad ones. Returns how many started."""
    campaign = f"{flight.replace(' ', '')}-cancelled"
    rows, errors = read_recipients(csv_path, key_prefix=campaign)
    for error in errors:
        print(f"skipped {csv_path.name} {error}", file=sys.stderr)
    started = await start_campaign(
        ox, demo_plan(), rows, context={"flight": flight}, campaign=campaign
    )
    return started.new + started.existing


async def rehearse(csv_path: Path, flight: str, store: str) -> dict[str, str]:
    """The same against the simulator: everyone answers the text with "2" after 5 minutes."""
    rows, _ = read_recipients(csv_path)
    requests = [row.request for row in rows]
    personas = [
        Persona(
            phone=r.recipient.phone,
            email=r.recipient.email,
            on_sms=SmsBehaviour(reply="2", reply_after="5m"),
        )
        for r in requests
    ]
    async with Sandbox(store=store, templates=TEMPLATES, personas=personas) as box:
        await notify(box.client, csv_path, flight)
        await box.run_until("1h")
        notifications = await box.client.list()
        return {n.recipient.id: n.status.value for n in notifications if n.parent_id is None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--flight", default="9K 1042")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        outcome = asyncio.run(rehearse(args.csv, args.flight, f"sqlite:///{folder}/rehearsal.db"))
    for recipient, status in sorted(outcome.items()):
        print(f"{recipient}: {status}")
    answered = sum(status == Status.ACKNOWLEDGED for status in outcome.values())
    print(f"{answered} of {len(outcome)} acknowledged")


if __name__ == "__main__":
    main()
