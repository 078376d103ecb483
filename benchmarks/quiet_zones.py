"""What keeping quiet hours in a phone number's zones costs the pure engine.

    .venv/bin/python benchmarks/quiet_zones.py -n 20000

Times ``decide(Tick)`` for one SMS step under 21:00-08:00 quiet hours, at instants spread over a
year, for a recipient with its own zone, a phone-only Boston number (one inferred zone), an
Australian mobile (eight zones) and a North American toll-free number (42 zones). Prints
microseconds per decision; no target, the figure is for comparison with the recipient's own
zone.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from outreach import Option, Plan, QuietHours, Recipient, Step
from outreach._engine import Facts, State, Tick, decide
from outreach._models import Medium, Notification
from outreach._zones import phone_zones

PLAN = Plan(
    name="p",
    steps=[Step(channel="sms", template="t")],
    options=[Option(key="1", label="one")],
    quiet_hours=QuietHours(start="21:00", end="08:00"),
)
FACTS = Facts({"sms": Medium.SMS})
RECIPIENTS = {
    "own zone": Recipient(id="r", phone="+16175550123", timezone="America/New_York"),
    "Boston number": Recipient(id="r", phone="+16175550123"),
    "Australian mobile": Recipient(id="r", phone="+61412345678"),
    "toll-free +1 800": Recipient(id="r", phone="+18005550199"),
}
START = datetime(2026, 1, 1, tzinfo=UTC)


def per_decision(recipient: Recipient, n: int) -> float:
    instants = [START + timedelta(minutes=(i * 7919) % (365 * 24 * 60)) for i in range(n)]
    began = time.perf_counter()
    for at in instants:
        n_ = Notification(
            id="n", recipient=recipient, plan=PLAN, created_at=at, updated_at=at, due_at=at
        )
        decide(State(n_, FACTS), Tick(), at)
    return (time.perf_counter() - began) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="decisions per recipient")
    args = parser.parse_args()
    for name, recipient in RECIPIENTS.items():
        zones = len(phone_zones(recipient.phone or "")) if recipient.timezone is None else 1
        print(f"{name:>18} ({zones:>2} zones): {per_decision(recipient, args.n):7.1f} µs/decision")


if __name__ == "__main__":
    main()
