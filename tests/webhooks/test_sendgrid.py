"""SendGrid's Event Webhook: signed batches update, suppress and are applied once."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

from outreach import AsyncClient, AttemptStatus, EventKind, Medium, Plan, Status
from outreach.exceptions import StoreError
from outreach.testing import FakeClock, InMemoryChannel

from ._helpers import (
    PAX,
    email_attempt,
    email_attempts,
    opted_out,
    public_key_b64,
    sendgrid_body,
    sendgrid_event,
    sendgrid_post,
    sendgrid_signature,
    snapshot,
    start,
    stored,
    to_step,
)

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
    # replayed: a genuine signature, older than OUTREACH_SIGNATURE_MAX_AGE (25 hours)
    old = await sendgrid_post(http, bounce, sendgrid_key, clock, age=timedelta(hours=25, minutes=1))
    assert old.status_code == 403
    # from the future: clocks may disagree by minutes, not by hours
    future = await sendgrid_post(http, bounce, sendgrid_key, clock, age=-timedelta(minutes=11))
    assert future.status_code == 403
    for malformed in (b"[{", b'{"event": "bounce"}', b"[1, 2]", b"\xff[]"):
        assert await post(malformed, signed(malformed)) == 400, malformed
    huge = sendgrid_body([sendgrid_event("open", email, clock, pad="x" * 1_100_000)])
    assert await post(huge, signed(huge)) == 413
    assert await snapshot(client) == before
    fresh = await sendgrid_post(http, bounce, sendgrid_key, clock, age=timedelta(minutes=9))
    assert fresh.status_code == 200


@pytest.mark.parametrize("failure", [StoreError, RuntimeError])
async def test_an_event_whose_handling_failed_is_applied_when_the_provider_retries(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    clock: FakeClock,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    failure: type[Exception],
) -> None:
    """The store failing (or a bug) is not the event's fault: 5xx, and the retry applies it."""
    n = await start(client, plan)
    email = await to_step(client, clock, n, 1)
    body = sendgrid_body(
        [sendgrid_event("bounce", email, clock, reason="550 5.1.1", type="bounce")]
    )
    real = client.inbound.update_attempt

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise failure("the database went away")

    monkeypatch.setattr(client.inbound, "update_attempt", broken)
    with pytest.raises(failure):
        await sendgrid_post(http, body, sendgrid_key, clock)
    monkeypatch.setattr(client.inbound, "update_attempt", real)
    retried = await sendgrid_post(http, body, sendgrid_key, clock)
    assert retried.status_code == 200
    bounced = (await client.get(n.id)).attempt(email.id)
    assert bounced is not None
    assert bounced.status is AttemptStatus.UNDELIVERED


POISONS = {
    "reason": ("bounce", {"type": "bounce", "reason": "550 mailbox \ud83d full"}),
    "sg_event_id": ("delivered", {"sg_event_id": "abc\ud83ddef"}),
    "email": ("unsubscribe", {"email": "ann\ud83d@example.com"}),
}


@pytest.mark.parametrize("field", sorted(POISONS))
async def test_one_poisoned_event_does_not_block_its_batch(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    sendgrid_key: ec.EllipticCurvePrivateKey,
    caplog: pytest.LogCaptureFixture,
    field: str,
) -> None:
    """A lone surrogate (valid JSON, not storable UTF-8) in one event: the rest still apply."""
    delivered, poisoned, bounced = await email_attempts(client, clock, plan, 3)
    kind, poison = POISONS[field]
    batch = [
        sendgrid_event("delivered", delivered, clock),
        sendgrid_event(kind, poisoned, clock, **poison),
        sendgrid_event("bounce", bounced, clock, type="bounce", reason="550 5.1.1 no such user"),
    ]
    body = sendgrid_body(batch)
    assert b"\\ud83d" in body  # JSON's own escape, as SendGrid would send it
    for _ in range(2):  # SendGrid's retry of the same batch is harmless
        response = await sendgrid_post(http, body, sendgrid_key, clock)
        assert response.status_code == 200, response.text
    assert (await stored(client, delivered)).status is AttemptStatus.DELIVERED
    assert (await stored(client, bounced)).status is AttemptStatus.UNDELIVERED
    n = await client.get(bounced.notification_id)
    assert n.due_at == clock.now()  # early escalation: the call goes out at once
    await client.run_due()
    assert n.id in [m.notification_id for m in channels["voice"].outbox]
    if field == "reason":  # sanitised, then applied like any bounce
        assert (await stored(client, poisoned)).error == "bounce: 550 mailbox \ufffd full"
    assert "\ud83d" not in caplog.text
    assert "ann\ufffd@example.com" not in caplog.text  # masked, sanitised or not


async def test_an_event_that_cannot_be_applied_is_logged_and_skipped_alone(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, broken, last = await email_attempts(client, clock, plan, 3)
    real = client.inbound.update_attempt

    async def picky(status: Any, *, attempt_id: str | None = None, **kwargs: Any) -> Any:
        if attempt_id == broken.id:
            raise ValueError(f"cannot apply the report for {PAX.email}")
        return await real(status, attempt_id=attempt_id, **kwargs)

    monkeypatch.setattr(client.inbound, "update_attempt", picky)
    batch = [sendgrid_event("delivered", a, clock) for a in (first, broken, last)]
    response = await sendgrid_post(http, sendgrid_body(batch), sendgrid_key, clock)
    assert response.status_code == 200
    assert (await stored(client, first)).status is AttemptStatus.DELIVERED
    assert (await stored(client, last)).status is AttemptStatus.DELIVERED
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1
    assert skipped[0].levelno == logging.WARNING
    assert PAX.email not in caplog.text  # masked in the warning


async def test_sendgrid_retries_for_a_day_are_accepted_and_applied_once(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    """SendGrid retries a batch for up to 24 h: a day-old signature is still verified, and the
    events' ``sg_event_id`` receipts (kept at least that long) make the replay harmless."""
    email = await email_attempt(client, clock, plan)
    body = sendgrid_body([sendgrid_event("open", email, clock)])
    first = await sendgrid_post(http, body, sendgrid_key, clock)
    assert first.status_code == 200
    signed = clock.now()
    clock.advance("23h59m")
    retried = await sendgrid_post(http, body, sendgrid_key, clock, age=clock.now() - signed)
    assert retried.status_code == 200
    statuses = [
        e.data["status"]
        async for e in client.events()
        if e.kind is EventKind.ATTEMPT_STATUS and e.attempt_id == email.id
    ]
    assert statuses == [AttemptStatus.ENGAGED]
