"""What the webhook tests share: provider-shaped, really signed requests and a few look-ups.

Twilio requests carry Twilio's full field sets and are signed with
``twilio.request_validator.RequestValidator``; SendGrid batches are JSON arrays with our custom
args at top level, signed with an ECDSA P-256 key made here (checked against SendGrid's own
``EventWebhook``).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhookHeader
from twilio.request_validator import RequestValidator

from outreach import AsyncClient, Attempt, EventKind, Medium, Notification, Plan, Recipient
from outreach.testing import FakeClock

PUBLIC = "https://hooks.example.com"
TWILIO_TOKEN = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "a" * 32
OUR_NUMBER = "+16175550100"
PAX = Recipient(
    id="pax-17", phone="+16175550123", email="ann@example.com", timezone="America/New_York"
)
CONTEXT = {"flight": "9K 1042"}


# --- request builders and look-ups ----------------------------------------------------------


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def connect(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def twilio_signature(url: str, params: Mapping[str, str], token: str = TWILIO_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


async def twilio_post(
    http: httpx.AsyncClient,
    path: str,
    params: Mapping[str, str],
    *,
    signed_url: str | None = None,
    token: str = TWILIO_TOKEN,
) -> httpx.Response:
    signature = twilio_signature(signed_url or PUBLIC + path, params, token)
    return await http.post(path, data=dict(params), headers={"X-Twilio-Signature": signature})


def inbound(body: str, *, phone: str = PAX.phone or "", **extra: str) -> dict[str, str]:
    """Twilio's incoming-message request, every field of it (providers.md §1)."""
    message = sid("SM")
    return {
        "ToCountry": "US",
        "ToState": "MA",
        "SmsMessageSid": message,
        "NumMedia": "0",
        "ToCity": "BOSTON",
        "FromZip": "02108",
        "SmsSid": message,
        "FromState": "MA",
        "SmsStatus": "received",
        "FromCity": "BOSTON",
        "Body": body,
        "FromCountry": "US",
        "To": OUR_NUMBER,
        "MessagingServiceSid": "MG" + "b" * 32,
        "ToZip": "02110",
        "NumSegments": "1",
        "MessageSid": message,
        "AccountSid": ACCOUNT,
        "From": phone,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def message_status(status: str, message: str, **extra: str) -> dict[str, str]:
    """A message status callback (providers.md §2)."""
    return {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "From": OUR_NUMBER,
        "To": PAX.phone or "",
        "MessageSid": message,
        "SmsSid": message,
        "MessageStatus": status,
        "SmsStatus": status,
        **extra,
    }


def call_status(status: str, call: str, sequence: int, **extra: str) -> dict[str, str]:
    """A call status callback (providers.md §3)."""
    return {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "CallSid": call,
        "CallStatus": status,
        "Called": PAX.phone or "",
        "Caller": OUR_NUMBER,
        "Direction": "outbound-api",
        "From": OUR_NUMBER,
        "To": PAX.phone or "",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(sequence),
        "Timestamp": "Mon, 23 Nov 2026 14:45:00 +0000",
        **extra,
    }


def sendgrid_signature(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def sendgrid_body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode() + b"\r\n"  # SendGrid ends the body with CRLF


async def sendgrid_post(
    http: httpx.AsyncClient,
    body: bytes,
    key: ec.EllipticCurvePrivateKey,
    clock: FakeClock,
    *,
    age: timedelta = timedelta(0),
) -> httpx.Response:
    timestamp = str(int((clock.now() - age).timestamp()))
    return await http.post(
        "/sendgrid/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            EventWebhookHeader.SIGNATURE: sendgrid_signature(key, timestamp, body),
            EventWebhookHeader.TIMESTAMP: timestamp,
        },
    )


def sendgrid_event(
    kind: str, attempt: Attempt, clock: FakeClock, /, **extra: Any
) -> dict[str, Any]:
    return {
        "email": attempt.address,
        "timestamp": int(clock.now().timestamp()),
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": kind,
        "category": ["flight-cancelled"],
        "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "outreach_notification_id": attempt.notification_id,
        "outreach_attempt_id": attempt.id,
        **extra,
    }


async def start(client: AsyncClient, plan: Plan, *, key: str = "pax-17") -> Notification:
    n = await client.start(PAX, plan, context=CONTEXT, key=key)
    await client.run_due()
    return await client.get(n.id)


async def to_step(client: AsyncClient, clock: FakeClock, n: Notification, step: int) -> Attempt:
    """Let the plan run until its ``step`` (0 sms, 1 email, 2 voice) has been sent."""
    while True:
        n = await client.get(n.id)
        current = [a for a in n.attempts if a.step == step]
        if current:
            return current[-1]
        assert n.due_at is not None
        clock.set(n.due_at)
        await client.run_due()


async def snapshot(client: AsyncClient) -> tuple[Any, ...]:
    """Everything a request could change: notifications, the event log, suppressions."""
    notifications = await client.list()
    events = [event async for event in client.events()]
    suppressed = await client.store.opted_out(
        [(Medium.SMS, PAX.phone or ""), (Medium.EMAIL, PAX.email or "")]
    )
    return notifications, events, suppressed


async def kinds(client: AsyncClient, n: Notification) -> list[EventKind]:
    return [e.kind async for e in client.events() if e.notification_id == n.id]


async def opted_out(client: AsyncClient, medium: Medium, address: str | None) -> bool:
    assert address is not None
    return bool(await client.store.opted_out([(medium, address)]))


def path_of(url: str | None) -> str:
    assert url is not None
    return httpx.URL(url).raw_path.decode()


async def email_attempt(client: AsyncClient, clock: FakeClock, plan: Plan) -> Attempt:
    n = await start(client, plan)
    return await to_step(client, clock, n, 1)


async def email_attempts(
    client: AsyncClient, clock: FakeClock, plan: Plan, count: int
) -> list[Attempt]:
    """The email attempts of ``count`` notifications (keys ``pax-0``...), all sent."""
    started = [await start(client, plan, key=f"pax-{i}") for i in range(count)]
    return [await to_step(client, clock, n, 1) for n in started]


async def stored(client: AsyncClient, attempt: Attempt) -> Attempt:
    """``attempt`` as the store has it now."""
    found = (await client.get(attempt.notification_id)).attempt(attempt.id)
    assert found is not None
    return found
