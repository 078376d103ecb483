"""Acknowledgement latency: from a customer's SMS reply reaching the webhook to the
notification being acknowledged (and its pending steps cancelled) in the SQLite store.

    .venv/bin/python benchmarks/ack_latency.py -n 2000

The webhooks app answers only after the change is committed, so the time of one signed
``POST /twilio/sms`` (served in process through httpx's ASGI transport: no network) is the
latency asked about. Target: p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from outreach import AsyncClient, Option, Plan, Recipient, StartRequest, Status, Step
from outreach._settings import Settings
from outreach.testing import InMemoryChannel
from outreach.webhooks import create_app

PUBLIC = "https://hooks.example.com"
TOKEN = "t" * 32
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


async def measure(n: int, folder: str) -> list[float]:
    settings = Settings(
        store=f"sqlite:///{folder}/ack.db",
        public_url=PUBLIC,
        secret_key="bench",
        twilio_auth_token=TOKEN,
    )
    plan = Plan(
        name="p",
        steps=[
            Step(channel="sms", template="flight_cancelled", wait="15m"),
            Step(channel="email", template="flight_cancelled"),
        ],
        options=[Option(key="1", label="Rebook"), Option(key="2", label="Refund")],
    )
    channels = {"sms": InMemoryChannel(name="sms"), "email": InMemoryChannel(name="email")}
    phones = [f"+1617{200 + i // 10000:03d}{i % 10000:04d}" for i in range(n)]
    latencies = []
    async with AsyncClient(
        settings=settings, channels=channels, templates=TEMPLATES, recipient_cap=None
    ) as ox:
        requests = [
            StartRequest(Recipient(id=str(i), phone=p), key=str(i)) for i, p in enumerate(phones)
        ]
        await ox.start_many(plan, requests, context={"flight": "9K 1042"})
        await ox.run_due()
        app = create_app(ox, settings=settings, sendgrid=False)
        signer = RequestValidator(TOKEN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for i, phone in enumerate(phones):
                form = {
                    "From": phone,
                    "To": "+16175550100",
                    "Body": "2",
                    "MessageSid": f"SM{i:032d}",
                    "AccountSid": "AC" + "a" * 32,
                    "SmsStatus": "received",
                    "NumMedia": "0",
                    "ApiVersion": "2010-04-01",
                }
                signature = signer.compute_signature(PUBLIC + "/twilio/sms", form)
                began = time.perf_counter()
                answer = await http.post(
                    "/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
                )
                latencies.append((time.perf_counter() - began) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"reply {i}: HTTP {answer.status_code} {answer.text}")
        acknowledged = await ox.list(status=Status.ACKNOWLEDGED, limit=n)
        if len(acknowledged) != n:
            raise SystemExit(f"only {len(acknowledged)} of {n} acknowledged")
        await ox.run_due()
        if len(channels["email"].outbox):
            raise SystemExit("an acknowledged notification still sent its email")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description="SMS acknowledgement latency (SQLite store)")
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        latencies = asyncio.run(measure(args.n, folder))
    print(f"{args.n} acknowledgements by SMS reply, SQLite file store, in-process ASGI")
    print(
        f"p50 {percentile(latencies, 0.50):.2f} ms   p99 {percentile(latencies, 0.99):.2f} ms"
        f"   max {max(latencies):.2f} ms   (target p99 < 20 ms)"
    )


if __name__ == "__main__":
    main()
