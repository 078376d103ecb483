"""What the Twilio webhooks tell the engine about who answered a call, for ``Plan(until=...)``:
a person (``AnsweredBy=human``, or a key pressed) reaches the rung; voicemail, an unknown
answerer or a call without answering-machine detection do not."""

from __future__ import annotations

import httpx
import pytest

from outreach import AsyncClient, Option, Plan, Status, Step
from outreach.testing import FakeClock

from ._helpers import call_status, sid, start, to_step, twilio_post

NOTICE = Plan(
    name="apology",
    steps=[
        Step(channel="sms", template="apology", wait="15m"),
        Step(channel="email", template="apology", wait="30m"),
        Step(channel="voice", template="apology", wait="1h"),
    ],
    until="delivered",
)


@pytest.mark.parametrize(
    ("answered_by", "where", "reached"),
    [
        ("human", "status", True),
        ("human", "twiml", True),
        ("machine_end_beep", "status", False),
        ("machine_start", "twiml", False),
        ("unknown", "twiml", False),
        ("", "twiml", False),  # answering-machine detection off: nobody can tell
    ],
)
async def test_only_a_person_answering_the_call_delivers_the_notice(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    answered_by: str,
    where: str,
    reached: bool,
) -> None:
    n = await start(client, NOTICE)
    call = await to_step(client, clock, n, 2)
    extra = {"AnsweredBy": answered_by} if answered_by else {}
    params = call_status("in-progress", sid("CA"), 2, **extra)
    path = f"/twilio/status?attempt={call.id}" if where == "status" else f"/twilio/voice/{call.id}"
    response = await twilio_post(http, path, params)
    assert response.status_code == 200
    n = await client.get(n.id)
    assert n.status is (Status.DELIVERED if reached else Status.ACTIVE)
    assert n.reached_by == ("voice answered by a person" if reached else None)


async def test_a_key_pressed_is_a_person_whatever_detection_said(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """With ``until="engaged"`` and options, a wrong key is not an answer, but someone is
    there: engaged, and the call is not hung up on."""
    plan = Plan(
        name="read-me",
        steps=NOTICE.steps,
        options=[Option(key="1", label="Rebook me"), Option(key="2", label="Refund")],
        until="engaged",
    )
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    await twilio_post(http, f"/twilio/voice/{call.id}", call_status("in-progress", sid("CA"), 2))
    assert (await client.get(n.id)).status is Status.ACTIVE
    pressed = {**call_status("in-progress", sid("CA"), 3), "Digits": "7"}
    response = await twilio_post(http, f"/twilio/voice/{call.id}/gather", pressed)
    assert response.status_code == 200
    n = await client.get(n.id)
    assert n.status is Status.ENGAGED
    assert n.reached_by == "voice answered by a person"
    assert n.choice is None


async def test_a_key_pressed_on_a_notice_without_options_acknowledges_it(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Answered by a person (delivered), then a key: an answer after all, recorded."""
    n = await start(client, NOTICE)
    call = await to_step(client, clock, n, 2)
    answered = call_status("in-progress", sid("CA"), 2, AnsweredBy="human")
    await twilio_post(http, f"/twilio/voice/{call.id}", answered)
    assert (await client.get(n.id)).status is Status.DELIVERED
    pressed = {**call_status("in-progress", sid("CA"), 3), "Digits": "1"}
    await twilio_post(http, f"/twilio/voice/{call.id}/gather", pressed)
    n = await client.get(n.id)
    assert (n.status, n.acknowledged_via) == (Status.ACKNOWLEDGED, "voice")
