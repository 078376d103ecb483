"""Pacing on the real clock: at a configured rate, N sends take N / rate seconds.

    .venv/bin/python benchmarks/pacing.py --rate 10 -n 200     # about 20 s

The channel is an in-memory one with ``rate=`` set, driven by ``AsyncClient.run_due`` on the
system clock, exactly as a worker runs it. Prints the span between the first and the last
send and its error against N / rate.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from outreach import AsyncClient, Plan, Recipient, Step
from outreach._settings import Settings
from outreach.channels import Message, Receipt
from outreach.testing import InMemoryChannel

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Timed(InMemoryChannel):
    """Notes the real time of every send."""

    def __init__(self, rate: float) -> None:
        super().__init__(name="sms", rate=rate)
        self.times: list[float] = []

    async def send(self, message: Message) -> Receipt:
        self.times.append(time.perf_counter())
        return await super().send(message)


async def measure(rate: float, n: int, folder: str) -> list[float]:
    sms = Timed(rate)
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled", wait="1h")])
    settings = Settings(secret_key="bench", store=f"sqlite:///{folder}/pacing.db")
    async with AsyncClient(
        channels={"sms": sms}, templates=TEMPLATES, settings=settings, recipient_cap=None
    ) as ox:
        people = [Recipient(id=f"p{i}", phone=f"+1617555{i:04d}") for i in range(n)]
        await ox.start_many(plan, people, context={"flight": "9K 1042"})
        while len(sms.times) < n:
            await ox.run_due()
            await asyncio.sleep(0.05)  # a worker's run() would sleep until the next due time
    return sms.times


def main() -> None:
    parser = argparse.ArgumentParser(description="pacing on the real clock")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        times = asyncio.run(measure(args.rate, args.n, folder))
    span = times[-1] - times[0]
    expected = (args.n - 1) / args.rate
    print(
        f"{args.n} sends at {args.rate:g}/s: first to last {span:.2f} s, "
        f"expected {expected:.2f} s ({(span - expected) / expected:+.1%}); total "
        f"{args.n / args.rate:.1f} s of slots"
    )


if __name__ == "__main__":
    main()
