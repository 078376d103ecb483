"""The sandbox without sockets (what ``outreach rehearse`` uses): the real adapters' requests go
straight into the simulator's API app, and the simulator's callbacks straight into the real
webhooks app, through httpx's ASGI transport. Same requests, same answers, same outcome as
over loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest

from outreach import Recipient, Status
from outreach._models import Medium
from outreach._sandbox import SANDBOX_NUMBER, SANDBOX_SECRET, SANDBOX_SENDER, Sandbox
from outreach._simulator._asgi import call_app
from outreach.channels import Channel, Message
from outreach.channels.sendgrid import SendGridEmail
from outreach.channels.twilio import TwilioSMS, TwilioVoice
from outreach.demo import demo_plan, templates_dir
from outreach.exceptions import DeliveryError
from outreach.testing import (
    CallBehaviour,
    EmailBehaviour,
    Persona,
    ProviderSimulator,
    SmsBehaviour,
)

PEOPLE = [
    Persona(  # ignores the text, bounces the email, answers the call and presses 2
        phone="+16175550101",
        email="ann@example.com",
        on_sms=SmsBehaviour(),
        on_email=EmailBehaviour(delivery="bounce"),
        on_call=CallBehaviour(answer="human", press="2"),
    ),
    Persona(phone="+16175550102", email="bo@example.com", on_sms=SmsBehaviour(reply="1")),
    Persona(phone="+16175550103", email="cy@example.com", on_sms=SmsBehaviour(reply="STOP")),
]


def _straight(sims: Sequence[ProviderSimulator]) -> dict[str, Channel]:
    settings = sims[0].settings(
        secret_key=SANDBOX_SECRET, twilio_from=SANDBOX_NUMBER, sendgrid_from=SANDBOX_SENDER
    )
    transport = sims[0].api_transport()
    return {
        "sms": TwilioSMS(settings=settings, http="httpx", transport=transport),
        "email": SendGridEmail(settings=settings, http="httpx", transport=transport),
        "voice": TwilioVoice(settings=settings, http="httpx", transport=transport),
    }


async def _story(*, in_process: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"in_process": True, "channels": _straight} if in_process else {}
    async with Sandbox(
        store="memory://", templates=templates_dir(), personas=PEOPLE, **options
    ) as box:
        for i, person in enumerate(PEOPLE):
            recipient = Recipient(id=f"pax-{i}", phone=person.phone, email=person.email)
            await box.client.start(recipient, demo_plan(), context={"flight": "9K 1042"})
        await box.run_until("3h")
        found = sorted(
            (n for n in await box.client.list() if n.parent_id is None),
            key=lambda n: n.recipient.id,
        )
        return {
            "outcomes": [(n.recipient.id, n.status, n.choice, n.acknowledged_via) for n in found],
            "attempts": [[(a.channel, a.status, a.error) for a in n.attempts] for n in found],
            "api": [(r["method"], r["path"], r["status"]) for r in box.sim.requests],
            "callbacks": [(c["kind"], c["method"], c["status"]) for c in box.sim.callbacks],
            "replies": [r["body"] for r in box.sim.auto_replies],
        }


async def test_in_process_gives_what_loopback_http_gives() -> None:
    over_http = await _story(in_process=False)
    straight = await _story(in_process=True)
    assert straight == over_http
    assert straight["outcomes"][0][1:] == (Status.ACKNOWLEDGED, "2", "voice")
    assert straight["outcomes"][1][1:] == (Status.ACKNOWLEDGED, "1", "sms")
    assert straight["outcomes"][2][1] is Status.EXHAUSTED  # STOP: no more texts
    assert {status for _, _, status in straight["callbacks"]} == {200}  # signatures verified
    assert len(straight["callbacks"]) > 20


async def test_in_process_opens_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    connections: list[Any] = []

    async def refused(*args: Any, **kwargs: Any) -> Any:
        connections.append(args)
        raise OSError("an in-process sandbox opened a connection")

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refused)
    result = await _story(in_process=True)
    assert connections == []
    assert result["outcomes"][1][1] is Status.ACKNOWLEDGED


async def test_a_dropped_request_is_answered_500_without_a_server() -> None:
    async with ProviderSimulator() as sim:
        sms = TwilioSMS(
            settings=sim.settings(twilio_from=SANDBOX_NUMBER),
            http="httpx",
            transport=sim.api_transport(),
            rate=None,
        )
        sim.drop_next(channel="sms")
        text = Message(
            notification_id="n1", attempt_id="a1", medium=Medium.SMS, to="+16175550101", body="Hi"
        )
        with pytest.raises(DeliveryError):
            await sms.send(text)
        await sms.aclose()
    [request] = sim.requests
    assert request["fault"] == "drop"


async def test_customers_answer_in_time_during_a_long_burst_of_paced_sends() -> None:
    """120 texts at one a second take two minutes; each customer answers 10 s after theirs
    arrives. The answers come in while the burst goes on, not after it (on a plain FakeClock
    every one of them waits for the burst's end)."""
    people = [
        Persona(
            phone=f"+1617{2_000_000 + i:07d}",
            on_sms=SmsBehaviour(reply="1", reply_after="10s"),
        )
        for i in range(120)
    ]
    plan = demo_plan().model_copy(update={"quiet_hours": None})
    async with Sandbox(
        store="memory://",
        templates=templates_dir(),
        personas=people,
        in_process=True,
        channels=_straight,  # TwilioSMS paces at its default, one text a second
    ) as box:
        began = box.clock.now()
        for i, person in enumerate(people):
            recipient = Recipient(id=f"pax-{i}", phone=person.phone)
            await box.client.start(recipient, plan, context={"flight": "9K 1042"})
        await box.run_until("10m")
        found = await box.client.list(limit=1000)
    sent = sorted(a.sent_at - began for n in found for a in n.attempts if a.sent_at)
    answered = sorted(n.acknowledged_at - began for n in found if n.acknowledged_at)
    assert len(answered) == 120
    assert sent[-1] >= timedelta(seconds=110)  # the burst is paced
    assert answered[0] < sent[-1] - timedelta(seconds=30)  # while it goes on, not after it
    for n in found:  # each within seconds of its own text
        assert n.acknowledged_at is not None
        sms_sent = n.attempts[0].sent_at
        assert sms_sent is not None
        assert n.acknowledged_at - sms_sent < timedelta(seconds=20)


async def test_an_app_that_fails_is_answered_500_as_a_server_would(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    answer = await call_app(broken, "POST", "http://127.0.0.1:8000/twilio/status", content=b"x")
    assert answer.status_code == 500
    assert "the app failed" in caplog.text


async def test_the_request_an_app_is_handed_is_the_one_a_server_would_see() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append({**scope, "body": (await receive())["body"]})
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"made"})

    answer = await call_app(
        app,
        "POST",
        "http://127.0.0.1:8000/twilio/voice/a%2F1?x=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        content=b"Digits=2",
    )
    assert (answer.status_code, answer.text, answer.headers["x-a"]) == (201, "made", "1")
    [scope] = seen
    assert (scope["method"], scope["path"], scope["raw_path"]) == (
        "POST",
        "/twilio/voice/a/1",
        b"/twilio/voice/a%2F1",
    )
    assert scope["query_string"] == b"x=1"
    assert dict(scope["headers"]) == {
        b"host": b"127.0.0.1:8000",
        b"content-type": b"application/x-www-form-urlencoded",
        b"content-length": b"8",
    }
    assert scope["body"] == b"Digits=2"


def test_a_simulator_posts_over_http_or_into_an_app_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        ProviderSimulator(webhook_transport=httpx.MockTransport(print), webhook_app=print)
