"""The webhooks app: provider-shaped, really signed requests in; the store's state checked.

Twilio requests carry Twilio's full field sets and are signed with
``twilio.request_validator.RequestValidator``; SendGrid batches are JSON arrays with our custom
args at top level, signed with an ECDSA P-256 key made here (checked against SendGrid's own
``EventWebhook``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from starlette.applications import Starlette
from starlette.routing import Mount
from twilio.request_validator import RequestValidator

from outreach import (
    AsyncClient,
    Attempt,
    AttemptStatus,
    EventKind,
    Medium,
    Notification,
    Plan,
    Recipient,
    Status,
    Step,
)
from outreach._settings import Settings
from outreach._tokens import TokenClaims, TokenSigner
from outreach._webhooks._common import route_path
from outreach.channels import Message, Receipt
from outreach.exceptions import ConfigurationError
from outreach.testing import FakeClock, InMemoryChannel
from outreach.webhooks import create_app

PUBLIC = "https://hooks.example.com"
TWILIO_TOKEN = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "a" * 32
OUR_NUMBER = "+16175550100"
PAX = Recipient(
    id="pax-17", phone="+16175550123", email="ann@example.com", timezone="America/New_York"
)
CONTEXT = {"flight": "9K 1042"}


# --- fixtures and request builders --------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture
def settings(sendgrid_key: ec.EllipticCurvePrivateKey) -> Settings:
    return Settings(
        public_url=PUBLIC,
        secret_key="test-secret",
        twilio_auth_token=TWILIO_TOKEN,
        sendgrid_webhook_public_key=public_key_b64(sendgrid_key),
    )


def connect(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def http(client: AsyncClient, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(create_app(client, settings=settings)) as h:
        yield h


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


# --- configuration ------------------------------------------------------------------------


async def test_refuses_to_start_without_a_secret_key(
    clock: FakeClock, templates_dir: Path, settings: Settings
) -> None:
    keyless = AsyncClient(
        store="memory://", templates=templates_dir, clock=clock, settings=Settings(secret_key=None)
    )
    with pytest.raises(ConfigurationError, match="OUTREACH_SECRET_KEY"):
        create_app(keyless, settings=settings)


async def test_refuses_to_start_without_provider_credentials(
    client: AsyncClient, settings: Settings
) -> None:
    with pytest.raises(ConfigurationError, match="OUTREACH_TWILIO_AUTH_TOKEN"):
        create_app(client, settings=settings.model_copy(update={"twilio_auth_token": None}))
    with pytest.raises(ConfigurationError, match="OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        create_app(
            client, settings=settings.model_copy(update={"sendgrid_webhook_public_key": None})
        )
    with pytest.raises(ConfigurationError, match="not a public key"):
        create_app(
            client, settings=settings.model_copy(update={"sendgrid_webhook_public_key": "x"})
        )
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    rsa_key = base64.b64encode(rsa_der).decode()
    with pytest.raises(ConfigurationError, match="P-256"):
        create_app(
            client, settings=settings.model_copy(update={"sendgrid_webhook_public_key": rsa_key})
        )


async def test_a_provider_left_out_needs_no_credentials_and_has_no_routes(
    client: AsyncClient, settings: Settings
) -> None:
    bare = settings.model_copy(
        update={"twilio_auth_token": None, "sendgrid_webhook_public_key": None}
    )
    async with connect(create_app(client, settings=bare, twilio=False, sendgrid=False)) as http:
        assert (await http.post("/twilio/sms", data=inbound("1"))).status_code == 404
        assert (await http.post("/sendgrid/events", content=b"[]")).status_code == 404
        assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_insecure_dev_mode_says_so_loudly_and_skips_signatures(
    client: AsyncClient, plan: Plan, caplog: pytest.LogCaptureFixture
) -> None:
    bare = Settings(public_url=PUBLIC)
    with caplog.at_level(logging.WARNING, logger="outreach.webhooks"):
        app = create_app(client, settings=bare, insecure_dev=True)
    assert any("INSECURE" in r.message and r.levelno == logging.WARNING for r in caplog.records)
    n = await start(client, plan)
    async with connect(app) as http:
        response = await http.post("/twilio/sms", data=inbound("2"))  # unsigned
    assert response.status_code == 200
    assert (await client.get(n.id)).choice == "2"


async def test_healthz(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- request verification: 4xx and nothing changes ---------------------------------------


def _forged(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    return params, {"X-Twilio-Signature": twilio_signature(PUBLIC + "/twilio/sms", params, "x")}


def _missing(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    return params, {}


def _wrong_host(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    url = "https://evil.example.com/twilio/sms"
    return params, {"X-Twilio-Signature": twilio_signature(url, params)}


def _wrong_path(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    return params, {"X-Twilio-Signature": twilio_signature(PUBLIC + "/twilio/status", params)}


def _tampered(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    signature = twilio_signature(PUBLIC + "/twilio/sms", params)
    return {**params, "Body": "1"}, {"X-Twilio-Signature": signature}


def _extra_field(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    signature = twilio_signature(PUBLIC + "/twilio/sms", params)
    return {**params, "OptOutType": "STOP"}, {"X-Twilio-Signature": signature}


@pytest.mark.parametrize(
    "forge", [_forged, _missing, _wrong_host, _wrong_path, _tampered, _extra_field]
)
async def test_bad_twilio_signatures_get_403_and_change_nothing(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, forge: Any
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    data, headers = forge(inbound("2"))
    response = await http.post("/twilio/sms", data=data, headers=headers)
    assert response.status_code == 403
    assert await snapshot(client) == before


async def test_status_callback_signed_for_another_attempt_is_refused(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    [attempt] = n.attempts
    params = message_status("undelivered", sid("SM"), ErrorCode="30003")
    before = await snapshot(client)
    signed = f"{PUBLIC}/twilio/status?attempt=someone-else"
    response = await twilio_post(
        http, f"/twilio/status?attempt={attempt.id}", params, signed_url=signed
    )
    assert response.status_code == 403
    assert await snapshot(client) == before


async def test_oversize_and_malformed_forms_get_4xx_and_change_nothing(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    huge = inbound("2" + " " * 70_000)
    assert (await twilio_post(http, "/twilio/sms", huge)).status_code == 413
    signature = {"X-Twilio-Signature": twilio_signature(PUBLIC + "/twilio/sms", {})}
    form = {"Content-Type": "application/x-www-form-urlencoded", **signature}
    for body in (b"Body=%ff&From=%2B16175550123", b"From=%2B16175550123&Body", b"\xff\xfe"):
        response = await http.post("/twilio/sms", content=body, headers=form)
        assert response.status_code == 400, body
    as_json = {"Content-Type": "application/json", **signature}
    response = await http.post("/twilio/sms", content=b'{"Body": "2"}', headers=as_json)
    assert response.status_code == 415
    assert await snapshot(client) == before


async def test_signature_covers_the_mount_point(
    client: AsyncClient, settings: Settings, plan: Plan
) -> None:
    n = await start(client, plan)
    mounted = settings.model_copy(update={"public_url": f"{PUBLIC}/hooks"})
    host = Starlette(routes=[Mount("/hooks", create_app(client, settings=mounted))])
    async with connect(host) as http:
        params = inbound("refund")
        response = await twilio_post(
            http, "/hooks/twilio/sms", params, signed_url=f"{PUBLIC}/hooks/twilio/sms"
        )
        assert response.status_code == 200
        without_prefix = await twilio_post(
            http, "/hooks/twilio/sms", inbound("1"), signed_url=f"{PUBLIC}/twilio/sms"
        )
        assert without_prefix.status_code == 403  # signed for a URL Twilio never called
    assert (await client.get(n.id)).choice == "2"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"path": "/twilio/sms", "raw_path": b"/twilio/sms"}, "/twilio/sms"),
        (
            {"path": "/hooks/twilio/status", "raw_path": b"/hooks/twilio/status",
             "root_path": "/hooks", "query_string": b"attempt=a%2Eb&x=1+2"},
            "/twilio/status?attempt=a%2Eb&x=1+2",
        ),
        (  # a server that keeps root_path out of path
            {"path": "/ack/t", "raw_path": b"/ack/t", "root_path": "/hooks"},
            "/ack/t",
        ),
        ({"path": "/a b"}, "/a%20b"),
    ],
)  # fmt: skip
def test_route_path_is_the_raw_path_and_query_below_the_mount(
    scope: dict[str, Any], expected: str
) -> None:
    assert route_path(scope) == expected


# --- inbound SMS ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "choice"),
    [
        ("2", "2"),
        (" 2. ", "2"),
        ("I'd like a REFUND please", "2"),
        ("rebook", "1"),
        ("Taxi!", "3"),
        ("ok", None),
        ("Got it, thanks", None),
        ("OK!", None),
        ("Y", None),
    ],
)
async def test_replies_acknowledge_with_the_option_they_name(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, body: str, choice: str | None
) -> None:
    n = await start(client, plan)
    [sms] = n.attempts
    response = await twilio_post(http, "/twilio/sms", inbound(body))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "<Message>Thank you." in response.text
    n = await client.get(n.id)
    assert (n.status, n.choice, n.acknowledged_via) == (Status.ACKNOWLEDGED, choice, "sms")
    [ack] = [e async for e in client.events() if e.kind is EventKind.ACKNOWLEDGED]
    assert ack.attempt_id == sms.id


async def test_a_second_answer_is_kept_but_the_first_wins(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    await twilio_post(http, "/twilio/sms", inbound("2"))
    response = await twilio_post(http, "/twilio/sms", inbound("1"))
    assert "already have your answer: Refund" in response.text
    assert (await client.get(n.id)).choice == "2"
    assert EventKind.REPLY_RECORDED in await kinds(client, n)


@pytest.mark.parametrize(
    "body", ["YES", "rebook or refund?", "What happened?", "Stop please", "I am not OK"]
)
async def test_other_replies_are_kept_and_answered_with_the_options(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, body: str
) -> None:
    n = await start(client, plan)
    response = await twilio_post(http, "/twilio/sms", inbound(body))
    assert response.status_code == 200
    n = await client.get(n.id)
    assert n.status is Status.ACTIVE
    assert not await opted_out(client, Medium.SMS, PAX.phone)
    if body == "YES":  # Twilio's opt-in word: never an acknowledgement by default
        assert "<Message>" not in response.text
        return
    assert "Reply 1 for Rebook me, 2 for Refund, 3 for Taxi to my destination" in response.text
    replies = [e async for e in client.events() if e.kind is EventKind.REPLY]
    assert [r.data["text"] for r in replies] == [body]


async def test_help_answers_with_the_configured_text_and_changes_nothing(
    client: AsyncClient, settings: Settings, plan: Plan
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    custom = settings.model_copy(update={"help_text": "Cape Air: call 555-0199. STOP to end."})
    async with connect(create_app(client, settings=custom)) as http:
        for params in (inbound("help"), inbound("INFO"), inbound("?", OptOutType="HELP")):
            response = await twilio_post(http, "/twilio/sms", params)
            assert "<Message>Cape Air: call 555-0199. STOP to end.</Message>" in response.text
    assert await snapshot(client) == before


async def test_an_unknown_sender_gets_a_polite_answer_and_nothing_is_stored(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    response = await twilio_post(http, "/twilio/sms", inbound("2", phone="+16175550999"))
    assert response.status_code == 200
    assert "could not match your message" in response.text
    assert await snapshot(client) == before


async def test_a_repeated_inbound_message_is_handled_once(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    params = inbound("Where is my bag?")
    await twilio_post(http, "/twilio/sms", params)
    second = await twilio_post(http, "/twilio/sms", params)
    assert second.status_code == 200
    assert (await kinds(client, n)).count(EventKind.REPLY) == 1


@pytest.mark.parametrize(
    "params",
    [
        *(
            inbound(word)
            for word in (
                "STOP", "stop", " Stop ", "sToP", "STOPALL", "unsubscribe", "Cancel", "END",
                "quit", "REVOKE", "optout",
            )
        ),
        inbound("please don't text me", OptOutType="STOP"),
    ],
)  # fmt: skip
async def test_stop_words_opt_the_number_out(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, params: dict[str, str]
) -> None:
    n = await start(client, plan)
    response = await twilio_post(http, "/twilio/sms", params)
    assert response.status_code == 200
    assert "<Message>" not in response.text  # Twilio confirms STOP itself
    assert await opted_out(client, Medium.SMS, PAX.phone)
    n = await client.get(n.id)
    assert n.status is Status.ACTIVE  # an opt-out is not an acknowledgement
    assert EventKind.REPLY in await kinds(client, n)  # kept in the audit trail


async def test_stop_ends_the_sms_wait_and_the_email_goes_at_once(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    await start(client, plan)
    await twilio_post(http, "/twilio/sms", inbound("STOP"))
    await client.run_due()  # no 15-minute wait for an answer that cannot come by SMS
    assert len(channels["email"].outbox) == 1


@pytest.mark.parametrize("params", [inbound("START"), inbound("unstop"), inbound("Yes")])
async def test_start_words_lift_the_opt_out(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, params: dict[str, str]
) -> None:
    await start(client, plan)
    await twilio_post(http, "/twilio/sms", inbound("STOP"))
    assert await opted_out(client, Medium.SMS, PAX.phone)
    await twilio_post(http, "/twilio/sms", params)
    assert not await opted_out(client, Medium.SMS, PAX.phone)


async def test_opt_out_type_start_lifts_the_opt_out(
    client: AsyncClient, http: httpx.AsyncClient
) -> None:
    await client.suppress(Medium.SMS, PAX.phone or "")
    await twilio_post(http, "/twilio/sms", inbound("go ahead", OptOutType="START"))
    assert not await opted_out(client, Medium.SMS, PAX.phone)


async def test_stop_then_a_later_plan_skips_sms_and_sends_the_email(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    first = await start(client, plan, key="first")
    await twilio_post(http, "/twilio/sms", inbound("STOP"))
    later = Plan(
        name="gate-change",
        steps=[
            Step(channel="sms", template="flight_cancelled"),
            Step(channel="email", template="flight_cancelled"),
        ],
    )
    n = await start(client, later, key="second")
    sms, email = n.attempts
    assert sms.status is AttemptStatus.SKIPPED
    assert sms.error is not None
    assert "opted out" in sms.error
    assert email.status is AttemptStatus.SENT
    assert len(channels["sms"].outbox) == 1  # only the first plan's text
    # Both notifications emailed: the first moved on from its SMS wait at the STOP.
    assert {m.notification_id for m in channels["email"].outbox} == {n.id, first.id}


# --- status callbacks ----------------------------------------------------------------------


async def test_message_status_moves_the_attempt_forward(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    [attempt] = n.attempts
    message = sid("SM")
    path = f"/twilio/status?attempt={attempt.id}"
    for status in ("sent", "delivered", "sent"):  # a late "sent" never moves it back
        response = await twilio_post(http, path, message_status(status, message))
        assert response.status_code == 200
    [attempt] = (await client.get(n.id)).attempts
    assert attempt.status is AttemptStatus.DELIVERED


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("30003", "unreachable"),
        ("30005", "unknown handset"),
        ("30006", "landline"),
        ("30007", "filtered by the carrier"),
        ("30034", "10DLC"),
        ("30999", "Twilio error 30999"),
    ],
)
async def test_undelivered_sms_escalates_at_once_with_the_reason(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    code: str,
    words: str,
) -> None:
    n = await start(client, plan)
    [attempt] = n.attempts
    params = message_status("undelivered", sid("SM"), ErrorCode=code)
    await twilio_post(http, f"/twilio/status?attempt={attempt.id}", params)
    n = await client.get(n.id)
    [attempt] = n.attempts
    assert attempt.status is AttemptStatus.UNDELIVERED
    assert attempt.error is not None
    assert code in attempt.error
    assert words in attempt.error
    assert n.due_at == clock.now()  # the 15-minute wait is over
    await client.run_due()
    assert len(channels["email"].outbox) == 1


async def test_status_callback_without_attempt_finds_the_message_by_its_sid(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    [attempt] = n.attempts
    assert attempt.provider_id is not None
    await twilio_post(http, "/twilio/status", message_status("delivered", attempt.provider_id))
    assert (await client.get(n.id)).attempts[0].status is AttemptStatus.DELIVERED


async def test_status_for_an_unknown_attempt_is_accepted_and_ignored(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    params = message_status("delivered", sid("SM"))
    response = await twilio_post(http, "/twilio/status?attempt=nope.0.0.0", params)
    assert response.status_code == 200
    assert await snapshot(client) == before


@pytest.mark.parametrize(
    ("status", "extra", "expected", "error"),
    [
        ("busy", {}, AttemptStatus.UNDELIVERED, "busy"),
        ("no-answer", {}, AttemptStatus.UNDELIVERED, "no answer"),
        ("failed", {}, AttemptStatus.FAILED, "the call failed"),
        ("in-progress", {"AnsweredBy": "human"}, AttemptStatus.ENGAGED, None),
        ("in-progress", {"AnsweredBy": "machine_end_beep"}, AttemptStatus.ENGAGED, "voicemail"),
        ("in-progress", {"AnsweredBy": "fax"}, AttemptStatus.UNDELIVERED, "fax"),
        ("completed", {"CallDuration": "31"}, AttemptStatus.ENGAGED, None),
    ],
)
async def test_call_status_and_answering_machine(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    status: str,
    extra: dict[str, str],
    expected: AttemptStatus,
    error: str | None,
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    path = f"/twilio/status?attempt={call.id}"
    await twilio_post(http, path, call_status(status, sid("CA"), 3, **extra))
    n = await client.get(n.id)
    attempt = n.attempt(call.id)
    assert attempt is not None
    assert attempt.status is expected
    assert attempt.error == error or (error and attempt.error and error in attempt.error)
    assert n.status is Status.ACTIVE  # voicemail and answering are not acknowledgements
    if expected in (AttemptStatus.UNDELIVERED, AttemptStatus.FAILED):
        assert n.due_at == clock.now()  # early escalation
        await client.run_due()
        assert (await client.get(n.id)).status is Status.EXHAUSTED  # the call was the last step


# --- voice ----------------------------------------------------------------------------------


async def test_the_call_reads_the_message_and_offers_the_options(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    params = call_status("in-progress", sid("CA"), 2, AnsweredBy="human")
    response = await twilio_post(http, f"/twilio/voice/{call.id}", params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "your flight 9K 1042 is cancelled" in response.text
    assert f'action="{PUBLIC}/twilio/voice/{call.id}/gather"' in response.text
    assert "Press 2: Refund." in response.text
    attempt = (await client.get(n.id)).attempt(call.id)
    assert attempt is not None
    assert attempt.status is AttemptStatus.ENGAGED  # answered


async def test_a_machine_gets_the_message_without_the_menu(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    params = call_status("in-progress", sid("CA"), 2, AnsweredBy="machine_end_beep")
    response = await twilio_post(http, f"/twilio/voice/{call.id}", params)
    assert "is cancelled" in response.text
    assert "<Gather" not in response.text
    n = await client.get(n.id)
    attempt = n.attempt(call.id)
    assert attempt is not None
    assert (attempt.status, attempt.error, n.status) == (
        AttemptStatus.ENGAGED,
        "voicemail",
        Status.ACTIVE,
    )


async def test_a_keypress_acknowledges_with_that_choice(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    call_sid = sid("CA")
    await twilio_post(
        http, f"/twilio/status?attempt={call.id}", call_status("ringing", call_sid, 1)
    )
    params = {**call_status("in-progress", call_sid, 2), "Digits": "2", "FinishedOnKey": ""}
    response = await twilio_post(http, f"/twilio/voice/{call.id}/gather", params)
    assert "We have recorded your choice: Refund." in response.text
    assert "<Hangup />" in response.text
    n = await client.get(n.id)
    assert (n.status, n.choice, n.acknowledged_via) == (Status.ACKNOWLEDGED, "2", "voice")
    assert channels["voice"].cancelled == []  # nobody hung up on the confirmation


async def test_an_invalid_key_repeats_the_menu_once(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    gather = f"/twilio/voice/{call.id}/gather"
    params = {**call_status("in-progress", sid("CA"), 2), "Digits": "9"}
    first = await twilio_post(http, gather, params)
    assert "not one of the options" in first.text
    assert f'action="{PUBLIC}{gather}?retry=1"' in first.text
    second = await twilio_post(http, f"{gather}?retry=1", params)
    assert "not one of the options" in second.text
    assert "<Gather" not in second.text
    assert "<Hangup />" in second.text
    n = await client.get(n.id)
    assert n.status is Status.ACTIVE
    assert (await kinds(client, n)).count(EventKind.REPLY) == 2


async def test_no_key_is_answered_but_not_acknowledged(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    params = {**call_status("in-progress", sid("CA"), 2), "Digits": ""}
    response = await twilio_post(http, f"/twilio/voice/{call.id}/gather", params)
    assert "<Hangup />" in response.text
    n = await client.get(n.id)
    attempt = n.attempt(call.id)
    assert attempt is not None
    assert (n.status, attempt.status) == (Status.ACTIVE, AttemptStatus.ENGAGED)


async def test_an_unknown_call_is_hung_up(http: httpx.AsyncClient) -> None:
    params = call_status("in-progress", sid("CA"), 2)
    response = await twilio_post(http, "/twilio/voice/nope.0.2.0", params)
    assert response.status_code == 200
    assert "<Hangup />" in response.text
    response = await twilio_post(http, "/twilio/voice/nope.0.2.0/gather", {**params, "Digits": "1"})
    assert "<Hangup />" in response.text


async def test_an_ack_elsewhere_hangs_up_the_ringing_call(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    await twilio_post(http, "/twilio/sms", inbound("taxi"))
    assert channels["voice"].cancelled == [call.provider_id]
    assert (await client.get(n.id)).choice == "3"


# --- SendGrid events ------------------------------------------------------------------------


def test_our_sendgrid_signatures_are_what_sendgrid_verifies(
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    body = sendgrid_body([{"event": "delivered", "email": "a@b.example"}])
    timestamp = "1795960800"
    signature = sendgrid_signature(sendgrid_key, timestamp, body)
    helper = EventWebhook(public_key_b64(sendgrid_key))
    assert helper.verify_signature(body.decode(), signature, timestamp)
    assert not helper.verify_signature(body.decode().strip(), signature, timestamp)


async def email_attempt(client: AsyncClient, clock: FakeClock, plan: Plan) -> Attempt:
    n = await start(client, plan)
    return await to_step(client, clock, n, 1)


@pytest.mark.parametrize(
    ("kind", "extra", "expected", "error"),
    [
        ("delivered", {"response": "250 OK"}, AttemptStatus.DELIVERED, None),
        ("open", {"useragent": "Mozilla/5.0", "ip": "203.0.113.9"}, AttemptStatus.ENGAGED, None),
        ("click", {"url": "https://x.example/ack/abc"}, AttemptStatus.ENGAGED, None),
        ("deferred", {"attempt": "1", "response": "421 try later"}, AttemptStatus.SENT, None),
        ("processed", {}, AttemptStatus.SENT, None),
        (
            "bounce",
            {"type": "blocked", "reason": "550 5.7.1 blocked", "bounce_classification": "Content"},
            AttemptStatus.UNDELIVERED,
            "bounce (blocked): 550 5.7.1 blocked (Content)",
        ),
        (
            "bounce",
            {"type": "bounce", "reason": "550 no such user", "status": "5.1.1"},
            AttemptStatus.UNDELIVERED,
            "bounce: 550 no such user [5.1.1]",
        ),
        (
            "dropped",
            {"reason": "Bounced Address"},
            AttemptStatus.FAILED,
            "dropped: Bounced Address",
        ),
    ],
)
async def test_sendgrid_events_update_the_email_attempt(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    sendgrid_key: ec.EllipticCurvePrivateKey,
    kind: str,
    extra: dict[str, Any],
    expected: AttemptStatus,
    error: str | None,
) -> None:
    email = await email_attempt(client, clock, plan)
    body = sendgrid_body([sendgrid_event(kind, email, clock, **extra)])
    response = await sendgrid_post(http, body, sendgrid_key, clock)
    assert response.status_code == 200
    n = await client.get(email.notification_id)
    attempt = n.attempt(email.id)
    assert attempt is not None
    assert (attempt.status, attempt.error) == (expected, error)
    assert n.status is Status.ACTIVE  # opens and clicks are never acknowledgements
    if expected in (AttemptStatus.UNDELIVERED, AttemptStatus.FAILED):
        assert n.due_at == clock.now()
        await client.run_due()
        assert len(channels["voice"].outbox) == 1  # the call goes out at once


@pytest.mark.parametrize("kind", ["spamreport", "unsubscribe", "group_unsubscribe"])
async def test_sendgrid_opt_outs_suppress_the_address(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    kind: str,
) -> None:
    email = await email_attempt(client, clock, plan)
    extra = {"asm_group_id": 42} if kind == "group_unsubscribe" else {}
    event = sendgrid_event(kind, email, clock, **extra)
    event["email"] = "ANN@example.com"  # as SendGrid spells it
    await sendgrid_post(http, sendgrid_body([event]), sendgrid_key, clock)
    assert await opted_out(client, Medium.EMAIL, PAX.email)


async def test_sendgrid_events_match_by_message_id_without_custom_args(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    email = await email_attempt(client, clock, plan)
    event = sendgrid_event("delivered", email, clock)
    del event["outreach_attempt_id"], event["outreach_notification_id"]
    event["sg_message_id"] = f"{email.provider_id}.filter0001.16648.5515E0B88.0"
    await sendgrid_post(http, sendgrid_body([event]), sendgrid_key, clock)
    attempt = (await client.get(email.notification_id)).attempt(email.id)
    assert attempt is not None
    assert attempt.status is AttemptStatus.DELIVERED


async def test_sendgrid_duplicates_are_applied_once(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    email = await email_attempt(client, clock, plan)
    delivered = sendgrid_event("delivered", email, clock)
    opened = sendgrid_event("open", email, clock)
    for batch in ([delivered, delivered], [opened, delivered], [opened]):
        response = await sendgrid_post(http, sendgrid_body(batch), sendgrid_key, clock)
        assert response.status_code == 200
    statuses = [
        e.data["status"]
        async for e in client.events()
        if e.kind is EventKind.ATTEMPT_STATUS and e.attempt_id == email.id
    ]
    assert statuses == [AttemptStatus.DELIVERED, AttemptStatus.ENGAGED]


async def test_bad_sendgrid_requests_get_4xx_and_change_nothing(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    email = await email_attempt(client, clock, plan)
    bounce = sendgrid_body([sendgrid_event("bounce", email, clock, type="bounce")])
    timestamp = str(int(clock.now().timestamp()))
    other_key = ec.generate_private_key(ec.SECP256R1())
    before = await snapshot(client)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        response = await http.post(
            "/sendgrid/events",
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
        return response.status_code

    def signed(body: bytes, key: ec.EllipticCurvePrivateKey = sendgrid_key) -> dict[str, str]:
        return {
            EventWebhookHeader.SIGNATURE: sendgrid_signature(key, timestamp, body),
            EventWebhookHeader.TIMESTAMP: timestamp,
        }

    assert await post(bounce, {}) == 403  # unsigned
    assert await post(bounce, signed(bounce, other_key)) == 403  # forged
    assert await post(bounce.replace(b"bounce", b"delivered"), signed(bounce)) == 403  # altered
    assert await post(bounce.strip(), signed(bounce)) == 403  # the CRLF is signed too
    garbage = {
        EventWebhookHeader.SIGNATURE: "%%%not base64",
        EventWebhookHeader.TIMESTAMP: timestamp,
    }
    assert await post(bounce, garbage) == 403
    not_der = {**signed(bounce), EventWebhookHeader.SIGNATURE: base64.b64encode(b"xx").decode()}
    assert await post(bounce, not_der) == 403
    assert await post(bounce, {**signed(bounce), EventWebhookHeader.TIMESTAMP: "soon"}) == 403
    # replayed: a genuine signature, older than OUTREACH_SIGNATURE_MAX_AGE (10 minutes)
    old = await sendgrid_post(http, bounce, sendgrid_key, clock, age=timedelta(minutes=11))
    assert old.status_code == 403
    future = await sendgrid_post(http, bounce, sendgrid_key, clock, age=-timedelta(minutes=11))
    assert future.status_code == 403
    for malformed in (b"[{", b'{"event": "bounce"}', b"[1, 2]", b"\xff[]"):
        assert await post(malformed, signed(malformed)) == 400, malformed
    huge = sendgrid_body([sendgrid_event("open", email, clock, pad="x" * 1_100_000)])
    assert await post(huge, signed(huge)) == 413
    assert await snapshot(client) == before
    fresh = await sendgrid_post(http, bounce, sendgrid_key, clock, age=timedelta(minutes=9))
    assert fresh.status_code == 200


# --- acknowledgement pages ------------------------------------------------------------------


async def email_message(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> Message:
    await email_attempt(client, clock, plan)
    return channels["email"].outbox[-1]


async def test_the_ack_page_shows_the_message_and_changes_nothing(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    before = await snapshot(client)
    for _ in range(3):  # a mail scanner, a link preview, the customer
        page = await http.get(path_of(message.ack_url))
        assert page.status_code == 200
    assert await snapshot(client) == before
    assert page.headers["content-type"].startswith("text/html")
    assert "Flight 9K 1042 is cancelled: choose what happens next" in page.text
    assert '<meta name="viewport"' in page.text
    for option in plan.options:
        assert f'name="choice" value="{option.key}"' in page.text
        assert option.label in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


async def test_posting_the_form_acknowledges_with_the_choice(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    response = await http.post(path_of(message.ack_url), data={"choice": "3"})
    assert response.status_code == 200
    assert "We have recorded your choice: Taxi to my destination." in response.text
    n = await client.get(message.notification_id)
    assert (n.status, n.choice, n.acknowledged_via) == (Status.ACKNOWLEDGED, "3", "email")
    [ack] = [e async for e in client.events() if e.kind is EventKind.ACKNOWLEDGED]
    assert ack.attempt_id == message.attempt_id
    again = await http.get(path_of(message.ack_url))
    assert "You have already answered" in again.text
    assert "Taxi to my destination" in again.text
    second = await http.post(path_of(message.ack_url), data={"choice": "1"})
    assert "You have already answered" in second.text
    assert "Taxi to my destination" in second.text
    assert (await client.get(n.id)).choice == "3"


async def test_an_option_link_preselects_and_a_bare_post_uses_it(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    link = path_of(message.option_urls["2"])
    page = await http.get(link)
    assert 'value="2" class="primary"' in page.text
    assert (await client.get(message.notification_id)).status is Status.ACTIVE
    response = await http.post(link)  # a one-click POST without a form body
    assert response.status_code == 200
    assert (await client.get(message.notification_id)).choice == "2"


async def test_a_choice_that_is_not_an_option_is_refused(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    before = await snapshot(client)
    response = await http.post(path_of(message.ack_url), data={"choice": "7"})
    assert response.status_code == 400
    assert await snapshot(client) == before


async def test_expired_unknown_and_forged_links(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    assert message.ack_url is not None
    assert message.unsubscribe_url is not None
    token = message.ack_url.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    nobody = TokenSigner("test-secret").sign(
        TokenClaims("ack", "no-such-notification", None, None, clock.now() + timedelta(days=1))
    )
    before = await snapshot(client)
    for method in ("GET", "POST"):
        for bad in (f"{payload}.{mac[::-1]}", "garbage", nobody):
            response = await http.request(method, f"/ack/{bad}")
            assert response.status_code == 404, (method, bad)
            assert "Link not recognised" in response.text
        wrong_purpose = await http.request(
            method, path_of(message.unsubscribe_url).replace("/unsubscribe/", "/ack/")
        )
        assert wrong_purpose.status_code == 404
    clock.advance("40d")  # past the deadline and the grace period
    for method in ("GET", "POST"):
        response = await http.request(method, path_of(message.ack_url))
        assert response.status_code == 410
        assert "This link has expired" in response.text
    after = await snapshot(client)
    assert after == before


async def test_the_page_escapes_what_it_shows(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await client.start(PAX, plan, context={"flight": "<script>alert(1)</script>"})
    await client.run_due()
    await to_step(client, clock, n, 1)
    page = await http.get(path_of(channels["email"].outbox[-1].ack_url))
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_one_click_unsubscribe(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    link = path_of(message.unsubscribe_url)
    page = await http.get(link)
    assert page.status_code == 200
    assert "Unsubscribe" in page.text
    assert not await opted_out(client, Medium.EMAIL, PAX.email)
    response = await http.post(link, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert await opted_out(client, Medium.EMAIL, PAX.email)
    n = await start(client, plan, key="later")
    await to_step(client, clock, n, 1)
    email = (await client.get(n.id)).attempts[1]
    assert email.status is AttemptStatus.SKIPPED
    assert (await http.post("/unsubscribe/garbage")).status_code == 404


# --- races ----------------------------------------------------------------------------------


class HeldChannel(InMemoryChannel):
    """Sends only when the test lets it: a send caught in flight."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: Message) -> Receipt:
        self.entered.set()
        await self.release.wait()
        return await super().send(message)


async def test_an_ack_racing_a_send_in_progress_stops_everything_after_it(
    clock: FakeClock, templates_dir: Path, plan: Plan, settings: Settings
) -> None:
    held = HeldChannel("email")
    channels = {
        "sms": InMemoryChannel(name="sms"),
        "email": held,
        "voice": InMemoryChannel(name="voice"),
    }
    async with (
        AsyncClient(
            store="memory://", channels=channels, templates=templates_dir, clock=clock
        ) as client,
        connect(create_app(client, settings=settings)) as http,
    ):
        n = await start(client, plan)
        clock.advance("15m")
        running = asyncio.create_task(client.run_due())
        await asyncio.wait_for(held.entered.wait(), 5)
        response = await twilio_post(http, "/twilio/sms", inbound("refund"))
        assert response.status_code == 200
        assert (await client.get(n.id)).status is Status.ACKNOWLEDGED  # before the answer
        held.release.set()
        await asyncio.wait_for(running, 5)
        for _ in range(4):
            clock.advance("1h")
            await client.run_due()
        n = await client.get(n.id)
    assert (n.status, n.choice) == (Status.ACKNOWLEDGED, "2")
    assert len(held.outbox) == 1  # the one in flight
    assert channels["voice"].outbox == []  # nothing after the acknowledgement


# --- duplicate and out-of-order callbacks ---------------------------------------------------

_SM, _CA = "SM" + "1" * 32, "CA" + "2" * 32
_HUMAN, _BEEP = {"AnsweredBy": "human"}, {"AnsweredBy": "machine_end_beep"}
SCENARIOS: dict[str, tuple[int, list[dict[str, str]]]] = {
    "sms delivered": (
        0,
        [message_status(s, _SM, **({"RawDlrDoneDate": "2611231401"} if s == "delivered" else {}))
         for s in ("sent", "delivered", "read")],
    ),
    "sms undelivered": (
        0,
        [message_status("sent", _SM), message_status("undelivered", _SM, ErrorCode="30003")],
    ),
    "call answered": (
        2,
        [call_status("initiated", _CA, 0), call_status("ringing", _CA, 1),
         call_status("in-progress", _CA, 2, **_HUMAN),
         call_status("completed", _CA, 3, CallDuration="40", **_HUMAN)],
    ),
    "call voicemail": (
        2,
        [call_status("initiated", _CA, 0), call_status("ringing", _CA, 1),
         call_status("in-progress", _CA, 2, **_BEEP),
         call_status("completed", _CA, 3, CallDuration="25", **_BEEP)],
    ),
    "call busy": (
        2,
        [call_status("initiated", _CA, 0), call_status("ringing", _CA, 1),
         call_status("busy", _CA, 2, SipResponseCode="486")],
    ),
}  # fmt: skip


async def replay(
    templates_dir: Path, settings: Settings, plan: Plan, scenario: str, order: list[int]
) -> tuple[Any, ...]:
    """Post a scenario's callbacks in ``order``; the attempt's and notification's final state."""
    step, callbacks = SCENARIOS[scenario]
    clock = FakeClock("2026-11-23T14:00:00+00:00")
    channels = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    async with (
        AsyncClient(
            store="memory://", channels=channels, templates=templates_dir, clock=clock
        ) as ox,
        connect(create_app(ox, settings=settings)) as http,
    ):
        n = await start(ox, plan)
        target = await to_step(ox, clock, n, step)
        for index in order:
            path = f"/twilio/status?attempt={target.id}"
            assert (await twilio_post(http, path, callbacks[index])).status_code == 200
        n = await ox.get(n.id)
        attempt = n.attempt(target.id)
        assert attempt is not None
        applied = [
            e.data["status"]
            async for e in ox.events()
            if e.kind is EventKind.ATTEMPT_STATUS and e.attempt_id == target.id
        ]
    assert len(applied) == len(set(applied)), applied  # no report applied twice
    return attempt.status, attempt.error, n.status, n.due_at, n.step, n.pass_


@hypothesis_settings(
    deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=st.sampled_from(sorted(SCENARIOS)), data=st.data())
def test_duplicate_and_out_of_order_callbacks_end_in_the_same_state(
    templates_dir: Path, settings: Settings, plan: Plan, scenario: str, data: st.DataObject
) -> None:
    count = len(SCENARIOS[scenario][1])
    extra = data.draw(st.lists(st.integers(0, count - 1), max_size=4), label="duplicates")
    order = data.draw(st.permutations([*range(count), *extra]), label="order")
    in_order = asyncio.run(replay(templates_dir, settings, plan, scenario, list(range(count))))
    shuffled = asyncio.run(replay(templates_dir, settings, plan, scenario, order))
    assert shuffled == in_order


async def test_an_event_whose_handling_failed_is_applied_when_the_provider_retries(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    clock: FakeClock,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = await start(client, plan)
    email = await to_step(client, clock, n, 1)
    body = sendgrid_body(
        [sendgrid_event("bounce", email, clock, reason="550 5.1.1", type="bounce")]
    )
    real = client.inbound.update_attempt

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(client.inbound, "update_attempt", broken)
    with pytest.raises(RuntimeError):
        await sendgrid_post(http, body, sendgrid_key, clock)
    monkeypatch.setattr(client.inbound, "update_attempt", real)
    retried = await sendgrid_post(http, body, sendgrid_key, clock)
    assert retried.status_code == 200
    bounced = (await client.get(n.id)).attempt(email.id)
    assert bounced is not None
    assert bounced.status is AttemptStatus.UNDELIVERED


async def test_one_click_unsubscribe_is_an_event_and_ends_the_email_wait(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await start(client, plan)
    await to_step(client, clock, n, 1)
    link = channels["email"].outbox[-1].unsubscribe_url
    assert link is not None
    response = await http.post(path_of(link), content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert EventKind.OPTED_OUT in await kinds(client, n)
    await client.run_due()
    assert len(channels["voice"].outbox) == 1  # no 30-minute wait on a mailbox that said no
