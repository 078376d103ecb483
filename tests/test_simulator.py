"""ProviderSimulator: Twilio's and SendGrid's APIs and behaviour over loopback HTTP.

The adapters talk to it as they talk to the providers; a small receiver app stands in for the
webhooks app and records (and verifies) every request the simulator makes. Signatures are
checked with the providers' own helpers, so the simulator cannot drift from the real schemes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from outreach._models import AttemptStatus, Medium, Option
from outreach._simulator import (
    CallBehaviour,
    EmailBehaviour,
    Persona,
    ProviderSimulator,
    SmsBehaviour,
)
from outreach._simulator._browser import ack_link, first_form
from outreach._simulator._server import LoopbackServer
from outreach._simulator._twilio import form_encoded
from outreach._webhooks._twiml import call_twiml
from outreach.channels._base import Message
from outreach.channels.sendgrid import SendGridEmail
from outreach.channels.twilio import TwilioSMS, TwilioVoice
from outreach.exceptions import (
    ConfigurationError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from outreach.testing import FakeClock

FROM = "+16175550100"
SENDER = "Cape Air <noreply@capeair.example>"
IGNORES = "+16175550101"
LANDLINE = "+16175550102"
STOPS = "+16175550103"
REPLIES_2 = "+16175550104"
UNREACHABLE = "+16175550105"
VOICEMAIL = "+16175550106"
PRESSES_1 = "+16175550107"
NO_ANSWER = "+16175550108"
CHOOSES_REFUND = "zoe@example.com"
BOUNCES = "gone@example.com"
OPTIONS = (
    Option(key="1", label="Rebook me"),
    Option(key="2", label="Refund"),
    Option(key="3", label="Taxi"),
)
PERSONAS = (
    Persona(phone=IGNORES, name="ignores SMS"),
    Persona(phone=LANDLINE, landline=True),
    Persona(phone=STOPS, on_sms=SmsBehaviour(reply="STOP", reply_after="2m")),
    Persona(phone=REPLIES_2, on_sms=SmsBehaviour(reply="2", reply_after="5m")),
    Persona(phone=UNREACHABLE, on_sms=SmsBehaviour(undelivered=30003)),
    Persona(phone=VOICEMAIL, on_call=CallBehaviour(answer="voicemail")),
    Persona(phone=PRESSES_1, on_call=CallBehaviour(answer="human", press="1")),
    Persona(phone=NO_ANSWER, on_call=CallBehaviour(answer="no-answer")),
    Persona(email=CHOOSES_REFUND, on_email=EmailBehaviour(choose="2", clicks_after="10m")),
    Persona(email=BOUNCES, on_email=EmailBehaviour(delivery="bounce")),
)


# -- a stand-in for the webhooks app ------------------------------------------------------------


@dataclass
class Hit:
    """One request the receiver got."""

    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class Receiver:
    """Records every request; answers like the webhooks app would (TwiML, an ack page)."""

    hits: list[Hit] = field(default_factory=list)
    url: str = ""
    refuse_events: int = 0
    """How many SendGrid event batches to answer with 503."""

    def of(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path.startswith(path)]

    def statuses(self, attempt: str, field_name: str) -> list[str]:
        return [
            hit.form[field_name]
            for hit in self.of("/twilio/status")
            if hit.url.endswith(f"attempt={attempt}") and field_name in hit.form
        ]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        hit = Hit(request.method, str(request.url), request.url.path, dict(request.headers), body)
        self.hits.append(hit)
        path = request.url.path
        if path.startswith("/twilio/voice/") and not path.endswith("/gather"):
            voicemail = hit.form.get("AnsweredBy", "").startswith("machine")
            twiml = call_twiml(
                "Your flight 9K 1042 is cancelled.",
                OPTIONS,
                gather_url=f"{self.url}{path}/gather",
                voicemail=voicemail,
            )
            return Response(twiml, media_type="text/xml")
        if path.endswith("/gather"):
            return Response(
                "<Response><Say>Thank you. Goodbye.</Say><Hangup/></Response>",
                media_type="text/xml",
            )
        if path == "/twilio/sms":
            reply = "" if hit.form["Body"] == "STOP" else "<Message>Noted: refund.</Message>"
            return Response(f"<Response>{reply}</Response>", media_type="text/xml")
        if path == "/sendgrid/events" and self.refuse_events:
            self.refuse_events -= 1
            return Response(status_code=503)
        if path.startswith("/ack/") and request.method == "GET":
            buttons = "".join(
                f'<button type="submit" name="choice" value="{o.key}">{o.label}</button>'
                for o in OPTIONS
            )
            return HTMLResponse(f'<html><body><form method="post">{buttons}</form></body></html>')
        return Response(status_code=200)


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the simulator's settings count, whatever this shell exports."""
    for name in [*os.environ]:
        if name.startswith(("OUTREACH_TWILIO_", "OUTREACH_SENDGRID_", "TWILIO_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("OUTREACH_PUBLIC_URL", raising=False)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = LoopbackServer(
        Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["GET", "POST"])])
    )
    await server.start()
    receiver.url = server.url
    yield receiver
    await server.aclose()


@pytest.fixture
async def sim(clock: FakeClock, receiver: Receiver) -> AsyncIterator[ProviderSimulator]:
    async with ProviderSimulator(
        clock=clock, personas=PERSONAS, webhook_url=receiver.url, seed=7
    ) as simulator:
        yield simulator


@pytest.fixture
async def sms(sim: ProviderSimulator) -> AsyncIterator[TwilioSMS]:
    channel = TwilioSMS(settings=sim.settings(twilio_from=FROM), max_in_flight=5)
    yield channel
    await channel.aclose()


@pytest.fixture
async def voice(sim: ProviderSimulator) -> AsyncIterator[TwilioVoice]:
    channel = TwilioVoice(settings=sim.settings(twilio_from=FROM), max_in_flight=5)
    yield channel
    await channel.aclose()


@pytest.fixture
async def email(sim: ProviderSimulator) -> AsyncIterator[SendGridEmail]:
    channel = SendGridEmail(settings=sim.settings(sendgrid_from=SENDER), max_in_flight=5)
    yield channel
    await channel.aclose()


def text(to: str, attempt: str = "n1.0", body: str = "Flight 9K 1042 is cancelled.") -> Message:
    return Message(notification_id="n1", attempt_id=attempt, medium=Medium.SMS, to=to, body=body)


def call(to: str, attempt: str = "n1.2") -> Message:
    return Message(
        notification_id="n1", attempt_id=attempt, medium=Medium.VOICE, to=to, body="Cancelled."
    )


def mail(to: str, receiver: Receiver, attempt: str = "n1.1") -> Message:
    link = f"{receiver.url}/ack/tok-{attempt}"
    return Message(
        notification_id="n1",
        attempt_id=attempt,
        medium=Medium.EMAIL,
        to=to,
        subject="Flight 9K 1042 is cancelled",
        body=f"We are sorry.\n\nChoose here: {link}\n",
        html=f'<p>We are sorry. <a href="{link}?x=1&amp;y=2">Choose</a></p>',
        ack_url=link,
    )


async def advance(clock: FakeClock, sim: ProviderSimulator, by: str) -> int:
    clock.advance(by)
    return await sim.run_due()


# -- signatures -----------------------------------------------------------------------------------


async def test_twilio_requests_validate_with_twilios_request_validator(
    sim: ProviderSimulator, sms: TwilioSMS, voice: TwilioVoice, clock: FakeClock, receiver: Receiver
) -> None:
    await sms.send(text(REPLIES_2))
    await voice.send(call(PRESSES_1))
    await advance(clock, sim, "10m")
    twilio_hits = [hit for hit in receiver.hits if hit.path.startswith("/twilio/")]
    kinds = {hit.path.rsplit("/", 1)[-1] for hit in twilio_hits}
    assert {"status", "sms", "gather"} <= kinds
    assert any(hit.path == "/twilio/voice/n1.2" for hit in twilio_hits)
    validator = RequestValidator(sim.auth_token)
    for hit in twilio_hits:
        signature = hit.headers["x-twilio-signature"]
        assert validator.validate(hit.url, hit.form, signature), hit.url
        assert hit.headers["content-type"] == "application/x-www-form-urlencoded"
        assert not RequestValidator("another-token").validate(hit.url, hit.form, signature)
        tampered = hit.form | {"From": "+15550000000"}
        assert not validator.validate(hit.url, tampered, signature)


async def test_sendgrid_events_validate_with_sendgrids_event_webhook(
    sim: ProviderSimulator, email: SendGridEmail, clock: FakeClock, receiver: Receiver
) -> None:
    assert sim.sendgrid_public_key.startswith("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")
    await email.send(mail(CHOOSES_REFUND, receiver))
    await advance(clock, sim, "1m")
    batches = receiver.of("/sendgrid/events")
    assert batches
    webhook = EventWebhook(sim.sendgrid_public_key)
    for hit in batches:
        payload = hit.body.decode("utf-8")
        assert payload.endswith("\r\n")  # SendGrid signs (and sends) a trailing CRLF
        signature = hit.headers["x-twilio-email-event-webhook-signature"]
        timestamp = hit.headers["x-twilio-email-event-webhook-timestamp"]
        assert timestamp == str(int(clock.now().timestamp()))
        assert webhook.verify_signature(payload, signature, timestamp)
        assert not webhook.verify_signature(
            payload.replace("processed", "delivered"), signature, timestamp
        )
        assert not webhook.verify_signature(payload, signature, str(int(timestamp) + 1))


async def test_get_callbacks_are_signed_over_the_query(
    sim: ProviderSimulator, clock: FakeClock, receiver: Receiver
) -> None:
    async with httpx.AsyncClient(auth=(sim.account_sid, sim.auth_token)) as http:
        answer = await http.post(
            f"{sim.base_url}/2010-04-01/Accounts/{sim.account_sid}/Calls.json",
            data={
                "To": PRESSES_1,
                "From": FROM,
                "Url": f"{receiver.url}/twilio/voice/n9?x=a%20b",
                "Method": "GET",
                "StatusCallback": f"{receiver.url}/twilio/status?attempt=n9",
                "StatusCallbackMethod": "GET",
                "StatusCallbackEvent": "initiated ringing answered completed",
            },
        )
    assert answer.status_code == 201
    await advance(clock, sim, "1m")
    gets = [hit for hit in receiver.hits if hit.method == "GET"]
    assert len(gets) == 5  # four status callbacks and the TwiML; the key press is POSTed
    validator = RequestValidator(sim.auth_token)
    for hit in gets:
        assert "CallSid=" in hit.url
        assert validator.validate(hit.url, {}, hit.headers["x-twilio-signature"])
    assert "x=a%20b&" in gets[3].url  # the URL's own query kept byte for byte


# -- the adapters against it ----------------------------------------------------------------------


async def test_adapters_send(
    sim: ProviderSimulator,
    sms: TwilioSMS,
    voice: TwilioVoice,
    email: SendGridEmail,
    receiver: Receiver,
) -> None:
    texted = await sms.send(text(IGNORES))
    called = await voice.send(call(NO_ANSWER))
    mailed = await email.send(mail(CHOOSES_REFUND, receiver))

    assert texted.status is AttemptStatus.QUEUED
    assert texted.provider_id is not None
    assert len(texted.provider_id) == 34
    assert texted.provider_id.startswith("SM")
    assert called.status is AttemptStatus.QUEUED
    assert called.provider_id is not None
    assert called.provider_id.startswith("CA")
    assert mailed.status is AttemptStatus.QUEUED
    assert mailed.provider_id

    [message] = sim.messages
    assert message["sid"] == texted.provider_id
    assert (message["to"], message["from"], message["status"]) == (IGNORES, FROM, "queued")
    assert message["status_callback"] == f"{receiver.url}/twilio/status?attempt=n1.0"
    [placed] = sim.calls
    assert placed["url"] == f"{receiver.url}/twilio/voice/n1.2"
    assert placed["status_callback_event"] == ["answered", "completed", "initiated", "ringing"]
    assert placed["machine_detection"] == "DetectMessageEnd"
    [sent] = sim.emails
    assert sent["message_id"] == mailed.provider_id
    assert sent["to"] == [CHOOSES_REFUND]
    assert sent["custom_args"] == {
        "outreach_notification_id": "n1",
        "outreach_attempt_id": "n1.1",
    }
    assert "Choose here" in sent["text"]


async def test_twilio_resources_have_twilios_shape(sim: ProviderSimulator) -> None:
    api = f"{sim.base_url}/2010-04-01/Accounts/{sim.account_sid}"
    auth = (sim.account_sid, sim.auth_token)
    body = "Vol annulé 😞 " * 6
    async with httpx.AsyncClient(auth=auth) as http:
        created = await http.post(
            f"{api}/Messages.json",
            data={"To": IGNORES, "From": FROM, "Body": body, "StatusCallback": "https://x/cb"},
        )
        fetched = await http.get(f"{api}/Messages/{created.json()['sid']}.json")
        call_resource = await http.post(
            f"{api}/Calls.json", data={"To": NO_ANSWER, "From": FROM, "Url": "https://x/v"}
        )
        hung_up = await http.post(
            f"{api}/Calls/{call_resource.json()['sid']}.json", data={"Status": "completed"}
        )
        missing = await http.get(f"{api}/Calls/CA{'0' * 32}.json")
    assert created.status_code == 201
    resource = created.json()
    assert set(resource) >= {
        "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated",
        "direction", "error_code", "error_message", "from", "messaging_service_sid",
        "num_media", "num_segments", "price", "price_unit", "sid", "status",
        "subresource_uris", "to", "uri",
    }  # fmt: skip
    assert resource["status"] == "queued"
    assert resource["num_segments"] == "2"  # UCS-2: 84 characters > 70
    assert resource["date_created"] == "Mon, 23 Nov 2026 14:00:00 +0000"
    assert resource["account_sid"] == sim.account_sid
    assert fetched.json() == resource
    assert call_resource.status_code == 201
    assert call_resource.json()["status"] == "queued"
    assert call_resource.json()["to_formatted"] == "(617) 555-0108"
    assert hung_up.status_code == 200
    assert hung_up.json()["status"] == "canceled"  # hung up while still queued
    assert missing.status_code == 404
    assert missing.json()["code"] == 20404


async def test_wrong_credentials_are_refused_like_the_providers(
    sim: ProviderSimulator, receiver: Receiver
) -> None:
    settings = sim.settings(
        twilio_from=FROM,
        twilio_auth_token="0" * 32,
        sendgrid_from=SENDER,
        sendgrid_api_key="SG.x.y",
    )
    sms = TwilioSMS(settings=settings, max_in_flight=5)
    voice = TwilioVoice(settings=settings, max_in_flight=5)
    email = SendGridEmail(settings=settings, max_in_flight=5)
    try:
        with pytest.raises(ConfigurationError, match="20003"):
            await sms.send(text(IGNORES))
        with pytest.raises(ConfigurationError):
            await voice.send(call(NO_ANSWER))
        with pytest.raises(ConfigurationError, match="invalid, expired, or revoked"):
            await email.send(mail(CHOOSES_REFUND, receiver))
    finally:
        for channel in (sms, voice, email):
            await channel.aclose()
    async with httpx.AsyncClient() as http:
        twilio = await http.post(
            f"{sim.base_url}/2010-04-01/Accounts/{sim.account_sid}/Messages.json",
            auth=(sim.account_sid, "wrong"),
            data={"To": IGNORES, "From": FROM, "Body": "x"},
        )
        sendgrid = await http.post(
            f"{sim.base_url}/v3/mail/send", headers={"Authorization": "Bearer SG.wrong"}, json={}
        )
    assert twilio.status_code == 401
    assert twilio.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert sendgrid.status_code == 401
    assert sendgrid.json()["errors"][0]["message"] == (
        "The provided authorization grant is invalid, expired, or revoked"
    )
    assert sendgrid.json()["errors"][0]["field"] is None
    assert sim.messages == []
    assert sim.calls == []
    assert sim.emails == []


async def test_invalid_numbers_and_landlines(
    sim: ProviderSimulator, sms: TwilioSMS, voice: TwilioVoice
) -> None:
    with pytest.raises(PermanentDeliveryError, match="21211"):
        await sms.send(text("+15551234567"))
    with pytest.raises(PermanentDeliveryError, match="21211"):
        await voice.send(call("0617 not a number"))
    with pytest.raises(PermanentDeliveryError, match="21614"):
        await sms.send(text(LANDLINE))
    landline_call = await voice.send(call(LANDLINE))  # a landline still takes calls
    assert landline_call.status is AttemptStatus.QUEUED
    async with httpx.AsyncClient(auth=(sim.account_sid, sim.auth_token)) as http:
        answer = await http.post(
            f"{sim.base_url}/2010-04-01/Accounts/{sim.account_sid}/Messages.json",
            data={"To": "+15551234567", "From": FROM, "Body": "x"},
        )
    assert answer.status_code == 400
    assert answer.json() == {
        "code": 21211,
        "message": "The 'To' number +15551234567 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }


async def test_sendgrid_refuses_a_bad_request(sim: ProviderSimulator) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{sim.base_url}/v3/mail/send",
            headers={"Authorization": f"Bearer {sim.sendgrid_api_key}"},
            json={"personalizations": [{"to": [{"email": "nope"}]}], "from": {"email": "a@b.co"}},
        )
    assert answer.status_code == 400
    fields = {error["field"] for error in answer.json()["errors"]}
    assert fields == {"personalizations.0.to.0.email", "subject", "content"}


# -- personas: SMS --------------------------------------------------------------------------------


async def test_sms_delivered_then_reply_after_five_minutes(
    sim: ProviderSimulator, sms: TwilioSMS, clock: FakeClock, receiver: Receiver
) -> None:
    receipt = await sms.send(text(REPLIES_2))
    assert receiver.hits == []  # no callback for the initial status
    await advance(clock, sim, "4s")
    assert receiver.statuses("n1.0", "MessageStatus") == ["sent", "delivered"]
    delivered = receiver.of("/twilio/status")[-1].form
    assert delivered["MessageSid"] == delivered["SmsSid"] == receipt.provider_id
    assert delivered["SmsStatus"] == "delivered"
    assert delivered["AccountSid"] == sim.account_sid
    assert (delivered["From"], delivered["To"]) == (FROM, REPLIES_2)
    assert "ErrorCode" not in delivered
    assert delivered["RawDlrDoneDate"] == "2611231400"

    await advance(clock, sim, "4m")
    assert receiver.of("/twilio/sms") == []
    await advance(clock, sim, "1m")
    [inbound] = receiver.of("/twilio/sms")
    form = inbound.form
    assert form["Body"] == "2"
    assert (form["From"], form["To"]) == (REPLIES_2, FROM)
    assert form["MessageSid"].startswith("SM")
    assert form["MessageSid"] != receipt.provider_id
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"]
    assert (form["SmsStatus"], form["NumMedia"], form["NumSegments"]) == ("received", "0", "1")
    assert form["ApiVersion"] == "2010-04-01"
    assert form["FromCity"] == form["ToCountry"] == ""
    assert "MessagingServiceSid" not in form
    [reply] = sim.auto_replies
    assert (reply["to"], reply["body"], reply["source"]) == (REPLIES_2, "Noted: refund.", "webhook")

    await sms.send(text(REPLIES_2, "n1.5"))  # replies once per sender, not to every text
    await advance(clock, sim, "1h")
    assert len(receiver.of("/twilio/sms")) == 1


async def test_sms_ignored_and_undelivered(
    sim: ProviderSimulator, sms: TwilioSMS, clock: FakeClock, receiver: Receiver
) -> None:
    await sms.send(text(IGNORES, "n1.0"))
    await sms.send(text(UNREACHABLE, "n2.0"))
    await advance(clock, sim, "1d")
    assert receiver.statuses("n1.0", "MessageStatus") == ["sent", "delivered"]
    assert receiver.statuses("n2.0", "MessageStatus") == ["sent", "undelivered"]
    assert receiver.statuses("n2.0", "ErrorCode") == ["30003"]
    assert receiver.of("/twilio/sms") == []
    assert [m["status"] for m in sim.messages] == ["delivered", "undelivered"]
    assert sim.messages[1]["error_code"] == 30003


async def test_stop_reply_opts_out_of_that_sender(
    sim: ProviderSimulator, sms: TwilioSMS, clock: FakeClock, receiver: Receiver
) -> None:
    await sms.send(text(STOPS))
    await advance(clock, sim, "10m")
    [inbound] = receiver.of("/twilio/sms")
    assert inbound.form["Body"] == "STOP"
    [confirmation] = sim.auto_replies
    assert confirmation["source"] == "twilio"
    assert confirmation["body"].startswith("You have successfully been unsubscribed")
    with pytest.raises(PermanentDeliveryError, match="21610") as refused:
        await sms.send(text(STOPS, "n1.9"))
    assert refused.value.opt_out

    sim.inbound_sms(STOPS, FROM, "START")
    await sim.run_due()
    assert (await sms.send(text(STOPS, "n1.10"))).status is AttemptStatus.QUEUED


async def test_messaging_service(
    sim: ProviderSimulator, clock: FakeClock, receiver: Receiver
) -> None:
    service = "MG" + "1" * 32
    channel = TwilioSMS(settings=sim.settings(twilio_messaging_service_sid=service))
    try:
        receipt = await channel.send(text(REPLIES_2))
    finally:
        await channel.aclose()
    assert receipt.status is AttemptStatus.QUEUED
    await advance(clock, sim, "6m")
    assert receiver.statuses("n1.0", "MessageStatus") == ["queued", "sent", "delivered"]
    [inbound] = receiver.of("/twilio/sms")
    assert inbound.form["MessagingServiceSid"] == service
    assert inbound.form["To"] == sim.messages[0]["from"]


# -- personas: calls ------------------------------------------------------------------------------


async def test_call_answered_and_1_pressed(
    sim: ProviderSimulator, voice: TwilioVoice, clock: FakeClock, receiver: Receiver
) -> None:
    receipt = await voice.send(call(PRESSES_1))
    await sim.run_due()
    assert receiver.statuses("n1.2", "CallStatus") == ["initiated"]
    await advance(clock, sim, "1m")

    statuses = receiver.of("/twilio/status")
    assert [hit.form["CallStatus"] for hit in statuses] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [hit.form["SequenceNumber"] for hit in statuses] == ["0", "1", "2", "3"]
    assert {hit.form["CallbackSource"] for hit in statuses} == {"call-progress-events"}
    assert {hit.form["CallSid"] for hit in statuses} == {receipt.provider_id}
    assert statuses[2].form["AnsweredBy"] == "human"
    assert "AnsweredBy" not in statuses[1].form
    completed = statuses[3].form
    assert completed["SipResponseCode"] == "200"
    assert int(completed["CallDuration"]) > 0
    assert completed["Duration"] == "1"

    order = [hit.path for hit in receiver.hits]
    assert order.index("/twilio/voice/n1.2") < order.index("/twilio/voice/n1.2/gather")
    [twiml] = receiver.of("/twilio/voice/n1.2/gather")
    assert twiml.form["Digits"] == "1"
    assert twiml.form["CallStatus"] == "in-progress"
    [fetch] = [hit for hit in receiver.hits if hit.path == "/twilio/voice/n1.2"]
    assert fetch.form["AnsweredBy"] == "human"
    assert fetch.form["Direction"] == "outbound-api"
    [record] = sim.calls
    assert (record["status"], record["digits"], record["answered_by"]) == (
        "completed",
        ["1"],
        "human",
    )


async def test_voicemail_hears_the_message_and_no_menu(
    sim: ProviderSimulator, voice: TwilioVoice, clock: FakeClock, receiver: Receiver
) -> None:
    await voice.send(call(VOICEMAIL))
    await advance(clock, sim, "2m")
    assert receiver.statuses("n1.2", "CallStatus") == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert receiver.statuses("n1.2", "AnsweredBy") == ["machine_end_beep", "machine_end_beep"]
    assert receiver.of("/twilio/voice/n1.2/gather") == []
    assert sim.calls[0]["digits"] == []


async def test_call_never_answered(
    sim: ProviderSimulator, voice: TwilioVoice, clock: FakeClock, receiver: Receiver
) -> None:
    await voice.send(call(NO_ANSWER))
    await advance(clock, sim, "59s")
    assert receiver.statuses("n1.2", "CallStatus") == ["initiated", "ringing"]
    await advance(clock, sim, "5s")
    assert receiver.statuses("n1.2", "CallStatus") == ["initiated", "ringing", "no-answer"]
    final = receiver.of("/twilio/status")[-1].form
    assert (final["CallDuration"], final["SipResponseCode"]) == ("0", "487")
    assert [hit for hit in receiver.hits if hit.path.startswith("/twilio/voice/")] == []


async def test_hang_up_ends_the_call(
    sim: ProviderSimulator, voice: TwilioVoice, clock: FakeClock, receiver: Receiver
) -> None:
    receipt = await voice.send(call(PRESSES_1))
    await advance(clock, sim, "9s")  # answered, the message is being read
    assert receiver.statuses("n1.2", "CallStatus")[-1] == "in-progress"
    assert receipt.provider_id is not None
    await voice.cancel(receipt.provider_id)
    await advance(clock, sim, "10m")
    assert receiver.statuses("n1.2", "CallStatus") == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert receiver.of("/twilio/voice/n1.2/gather") == []  # never got to press 1
    assert sim.calls[0]["status"] == "completed"
    assert sim.pending == 0


# -- personas: email ------------------------------------------------------------------------------


async def test_email_clicked_and_refund_chosen(
    sim: ProviderSimulator, email: SendGridEmail, clock: FakeClock, receiver: Receiver
) -> None:
    receipt = await email.send(mail(CHOOSES_REFUND, receiver))
    await advance(clock, sim, "6s")
    events = [event for hit in receiver.of("/sendgrid/events") for event in json.loads(hit.body)]
    assert [event["event"] for event in events] == ["processed", "delivered"]
    for event in events:
        assert event["email"] == CHOOSES_REFUND
        assert event["outreach_attempt_id"] == "n1.1"  # custom args at top level
        assert event["outreach_notification_id"] == "n1"
        assert event["sg_message_id"].startswith(f"{receipt.provider_id}.filter")
        assert event["sg_event_id"]
        assert isinstance(event["timestamp"], int)
    assert events[0]["timestamp"] == int(datetime(2026, 11, 23, 14, tzinfo=UTC).timestamp())
    assert len({event["sg_event_id"] for event in events}) == 2
    assert receiver.of("/ack/") == []

    await advance(clock, sim, "10m")
    later = [event for hit in receiver.of("/sendgrid/events")[1:] for event in json.loads(hit.body)]
    assert [event["event"] for event in later] == ["open", "click"]
    assert later[1]["url"] == f"{receiver.url}/ack/tok-n1.1"
    page, choice = receiver.of("/ack/")
    assert (page.method, page.url) == ("GET", f"{receiver.url}/ack/tok-n1.1")
    assert "Mozilla" in page.headers["user-agent"]
    assert (choice.method, choice.url, choice.form) == (
        "POST",
        f"{receiver.url}/ack/tok-n1.1",
        {"choice": "2"},
    )
    assert choice.headers["content-type"] == "application/x-www-form-urlencoded"
    kinds = [entry["kind"] for entry in sim.callbacks]
    assert kinds[-3:] == ["sendgrid-events", "ack-page", "ack-submit"]


async def test_email_bounces(
    sim: ProviderSimulator, email: SendGridEmail, clock: FakeClock, receiver: Receiver
) -> None:
    await email.send(mail(BOUNCES, receiver))
    await advance(clock, sim, "1d")
    [batch] = receiver.of("/sendgrid/events")  # due together, posted together
    events = json.loads(batch.body)
    assert [event["event"] for event in events] == ["processed", "bounce"]
    assert events[1]["type"] == "bounce"
    assert events[1]["status"] == "5.1.1"
    assert receiver.of("/ack/") == []


async def test_refused_event_batches_are_posted_again(
    sim: ProviderSimulator, email: SendGridEmail, clock: FakeClock, receiver: Receiver
) -> None:
    receiver.refuse_events = 1  # answers the first batch 503; SendGrid tries again later
    await email.send(mail(IGNORES_EMAIL, receiver))
    await advance(clock, sim, "10s")
    assert [entry["status"] for entry in sim.callbacks] == [503]
    await advance(clock, sim, "5m")
    first, second = receiver.of("/sendgrid/events")
    assert first.body == second.body  # the same events...
    assert (
        first.headers["x-twilio-email-event-webhook-timestamp"]
        != (
            second.headers["x-twilio-email-event-webhook-timestamp"]  # ...signed again
        )
    )
    assert [event["event"] for event in json.loads(second.body)] == ["processed", "delivered"]


IGNORES_EMAIL = "reader@example.com"


# -- faults ---------------------------------------------------------------------------------------


async def test_rate_limits(
    sim: ProviderSimulator, sms: TwilioSMS, email: SendGridEmail, receiver: Receiver
) -> None:
    sim.fail_next(2, status=429, retry_after=2)
    with pytest.raises(RateLimited) as twilio_limit:
        await sms.send(text(IGNORES))
    with pytest.raises(RateLimited) as sendgrid_limit:
        await email.send(mail(IGNORES_EMAIL, receiver))
    assert twilio_limit.value.retry_after == timedelta(seconds=2)
    assert sendgrid_limit.value.retry_at == datetime(2026, 11, 23, 14, 0, 2, tzinfo=UTC)
    assert (await sms.send(text(IGNORES))).status is AttemptStatus.QUEUED
    assert len(sim.messages) == 1
    assert [r["status"] for r in sim.requests] == [429, 429, 201]


async def test_server_errors_by_channel(
    sim: ProviderSimulator,
    sms: TwilioSMS,
    voice: TwilioVoice,
    email: SendGridEmail,
    receiver: Receiver,
) -> None:
    sim.fail_next(1, status=503, channel="email")
    sim.fail_next(1, status=500, channel="sms")
    assert (await voice.send(call(NO_ANSWER))).status is AttemptStatus.QUEUED
    with pytest.raises(TransientDeliveryError, match="500"):
        await sms.send(text(IGNORES))
    with pytest.raises(TransientDeliveryError, match="503"):
        await email.send(mail(IGNORES_EMAIL, receiver))
    assert (await sms.send(text(IGNORES))).status is AttemptStatus.QUEUED
    assert (await email.send(mail(IGNORES_EMAIL, receiver))).status is AttemptStatus.QUEUED


async def test_slow_and_dropped(
    sim: ProviderSimulator, sms: TwilioSMS, email: SendGridEmail, receiver: Receiver
) -> None:
    sim.slow_next(1, delay=0.05)
    started = time.perf_counter()
    assert (await sms.send(text(IGNORES))).status is AttemptStatus.QUEUED
    assert time.perf_counter() - started >= 0.05

    sim.drop_next(1, channel="sms")
    assert (await sms.send(text(IGNORES, "n2.0"))).status is AttemptStatus.UNKNOWN
    assert len(sim.messages) == 1  # lost before Twilio acted on it

    sim.drop_next(1, processed=True)
    assert (await email.send(mail(IGNORES_EMAIL, receiver))).status is AttemptStatus.UNKNOWN
    assert len(sim.emails) == 1  # accepted, but the answer never came back
    assert [r["fault"] for r in sim.requests] == ["slow", "drop", "drop"]


# -- driving it -----------------------------------------------------------------------------------


async def test_actions_run_in_time_order_only_when_due(
    sim: ProviderSimulator, sms: TwilioSMS, clock: FakeClock
) -> None:
    await sms.send(text(REPLIES_2))
    assert sim.next_due() == clock.now() + timedelta(seconds=1)
    assert await sim.run_due() == 0
    assert sim.pending == 3  # sent, delivered, the reply
    assert await advance(clock, sim, "1h") == 3
    assert sim.next_due() is None


async def test_same_seed_same_ids(clock: FakeClock) -> None:
    sids = []
    for _ in range(2):
        async with ProviderSimulator(clock=clock, seed=42) as sim:
            channel = TwilioSMS(settings=sim.settings(twilio_from=FROM), max_in_flight=5)
            try:
                sids.append(((await channel.send(text(IGNORES))).provider_id, sim.auth_token))
            finally:
                await channel.aclose()
    assert sids[0] == sids[1]


async def test_autorun_follows_the_clock(clock: FakeClock, receiver: Receiver) -> None:
    async with ProviderSimulator(clock=clock, webhook_url=receiver.url, autorun=True) as sim:
        channel = TwilioSMS(settings=sim.settings(twilio_from=FROM), max_in_flight=5)
        try:
            await channel.send(text(IGNORES))
        finally:
            await channel.aclose()
        clock.advance("5s")
        async with asyncio.timeout(2):
            while len(receiver.of("/twilio/status")) < 2:
                await asyncio.sleep(0.005)
    assert receiver.statuses("n1.0", "MessageStatus") == ["sent", "delivered"]


def test_sync_use_from_a_thread() -> None:
    clock = FakeClock("2026-11-23T14:00:00+00:00")
    seen: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        seen.append(dict(parse_qsl((await request.body()).decode())))
        return Response()

    receiver = LoopbackServer(Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])]))
    receiver.start_in_thread()
    try:
        with ProviderSimulator(clock=clock, webhook_url=receiver.url) as sim:
            answer = httpx.post(
                f"{sim.base_url}/2010-04-01/Accounts/{sim.account_sid}/Messages.json",
                auth=(sim.account_sid, sim.auth_token),
                data={
                    "To": IGNORES,
                    "From": FROM,
                    "Body": "hello",
                    "StatusCallback": f"{receiver.url}/twilio/status",
                },
            )
            assert answer.status_code == 201
            clock.advance("1m")
            assert sim.run_due_sync() == 2
    finally:
        receiver.stop()
    assert [form["MessageStatus"] for form in seen] == ["sent", "delivered"]


# -- the browser ----------------------------------------------------------------------------------


def test_finds_the_ack_link_and_the_form() -> None:
    html = '<a href="https://x.example/ack/t1?a=1&amp;b=2">Refund</a>'
    assert ack_link(None, html) == "https://x.example/ack/t1?a=1&b=2"
    assert ack_link("Choose here: https://x.example/ack/t2.", html) == "https://x.example/ack/t2"
    assert ack_link("no link", None) is None
    page = (
        '<form method="post" action="/ack/t1"><input type="hidden" name="csrf" value="k">'
        '<button type="submit" name="choice" value="1">Rebook</button>'
        '<button name="choice" value="2">Refund</button></form>'
        '<form><button name="other" value="x"></button></form>'
    )
    form = first_form(page)
    assert form is not None
    assert (form.method, form.action) == ("post", "/ack/t1")
    assert form.fields == [("csrf", "k")]
    assert form.buttons == [("choice", "1"), ("choice", "2")]
    assert first_form("<p>Thank you</p>") is None


def test_personas_validate() -> None:
    with pytest.raises(ValueError, match="duration"):
        SmsBehaviour(reply_after="soon")
    with pytest.raises(ValueError, match="email"):
        Persona(email="nobody")
    assert EmailBehaviour(choose="2").click_delay == timedelta(minutes=10)
    assert EmailBehaviour().click_delay is None


def test_callback_forms_are_encoded_as_urlencode_does() -> None:
    fields = {"Body": "Réservé & payé 100%", "To": "+16175550123", "Empty": "", "A b": "c=d/e?"}
    assert form_encoded(fields) == urlencode(fields)
    assert form_encoded(fields) == form_encoded(dict(fields))  # the second time, from the cache
