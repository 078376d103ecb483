"""Twilio adapters on the wire: the exact requests they send and how every failure maps.

Responses and error bodies follow Twilio's real shapes (``tests/fixtures/twilio_*.json``;
error bodies from ``reference/providers.md`` §5).
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
import twilio.base.exceptions as twilio_exceptions

from outreach import AsyncClient, Plan, Recipient, Status, Step
from outreach._models import AttemptStatus, Medium, Option
from outreach._settings import Settings
from outreach._templates import sms_segments
from outreach._webhooks._phrases import twilio_language
from outreach._webhooks._twiml import call_twiml
from outreach.channels._base import Message, Receipt
from outreach.channels.twilio import SAY_VOICES, TwilioSMS, TwilioVoice, map_error, voice_language
from outreach.exceptions import (
    ConfigurationError,
    OutreachError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from outreach.testing import FakeClock

FIXTURES = Path(__file__).parent / "fixtures"
SID = "AC8a1ba3363e6cebfb092cc891c515ff56"
TOKEN = "f3b2c1d0e9a8f7b6c5d4e3f2a1b0c9d8"
SERVICE = "MG1dec2199f7ec0d091522329bab3e3736"
CALL_SID = "CAca5b0bc1a5c6f4cf312e6bb87d13025e"
FROM = "+16175550100"
TO = "+16175550123"
API = f"https://api.twilio.com/2010-04-01/Accounts/{SID}"
PUBLIC = "https://hooks.example.com"
ATTEMPT = "n1.0.0.0"
STATUS_CALLBACK = f"{PUBLIC}/twilio/status?attempt={ATTEMPT}"
BASIC = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
OPTIONS = (
    Option(key="1", label="Rebook me", keywords=("rebook",)),
    Option(key="2", label="Refund", keywords=("refund",)),
    Option(key="3", label="Taxi to my destination", keywords=("taxi",)),
)


@pytest.fixture(autouse=True)
def _no_twilio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ACCOUNT_SID",
        "AUTH_TOKEN",
        "FROM",
        "MESSAGING_SERVICE_SID",
        "VOICE_FROM",
        "BASE_URL",
    ):
        monkeypatch.delenv(f"OUTREACH_TWILIO_{name}", raising=False)
    for name in ("TWILIO_EDGE", "TWILIO_REGION", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OUTREACH_PUBLIC_URL", PUBLIC)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_account_sid": SID,
        "twilio_auth_token": TOKEN,
        "twilio_from": FROM,
        "public_url": PUBLIC,
    }
    return Settings(**(values | overrides))


@pytest.fixture
async def sms() -> AsyncIterator[TwilioSMS]:
    channel = TwilioSMS(http="httpx", settings=settings())
    yield channel
    await channel.aclose()


@pytest.fixture
async def voice() -> AsyncIterator[TwilioVoice]:
    channel = TwilioVoice(http="httpx", settings=settings(twilio_voice_from="+16175550199"))
    yield channel
    await channel.aclose()


def message(
    body: str = "Your flight 9K 1042 is cancelled.", medium: Medium = Medium.SMS
) -> Message:
    return Message(notification_id="n1", attempt_id=ATTEMPT, medium=medium, to=TO, body=body)


def form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode("ascii"), keep_blank_values=True, strict_parsing=True)


def message_resource(request: httpx.Request, status: str = "queued") -> httpx.Response:
    """Twilio's 201 for Messages.json: the Message resource, echoing the request."""
    sent = {k: v[0] for k, v in form(request).items()}
    resource = json.loads((FIXTURES / "twilio_message.json").read_text())
    resource |= {
        "body": sent["Body"],
        "to": sent["To"],
        "from": sent.get("From"),
        "messaging_service_sid": sent.get("MessagingServiceSid"),
        "num_segments": str(sms_segments(sent["Body"])[1]),
        "status": status,
    }
    return httpx.Response(201, json=resource)


def call_resource(request: httpx.Request) -> httpx.Response:
    resource = json.loads((FIXTURES / "twilio_call.json").read_text())
    sent = form(request)
    resource |= {"to": sent["To"][0], "from": sent["From"][0]}
    return httpx.Response(201, json=resource)


def assert_twilio_request(request: httpx.Request, path: str) -> None:
    assert request.method == "POST"
    assert str(request.url) == f"{API}/{path}"
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"


# -- SMS wire format -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        pytest.param(
            "Vol 9K 1042 annulé 😞 Répondez 1 pour être réacheminé", "UCS-2", 1, id="ucs2"
        ),
        pytest.param("Flight 9K 1042 from Boston is cancelled. " * 10, "GSM-7", 3, id="long-gsm"),
        pytest.param(
            "Votre vol 9K 1042 est annulé. Répondez 1 pour un nouveau vol, 2 pour un "
            "remboursement, 3 pour un taxi. Ça ira !",
            "GSM-7",  # é, Ç and friends are in the GSM alphabet
            1,
            id="french",
        ),
    ],
)
async def test_sms_form_fields_auth_and_path(
    sms: TwilioSMS, body: str, encoding: str, segments: int
) -> None:
    assert sms_segments(body) == (encoding, segments)
    with respx.mock(assert_all_called=True) as router:
        route = router.post(f"{API}/Messages.json").mock(side_effect=message_resource)
        receipt = await sms.send(message(body))
    request = route.calls.last.request
    assert_twilio_request(request, "Messages.json")
    assert form(request) == {
        "To": [TO],
        "From": [FROM],
        "Body": [body],
        "StatusCallback": [STATUS_CALLBACK],
    }
    assert route.call_count == 1  # one request, whatever the segment count: Twilio splits
    assert receipt == Receipt(
        "SMce1a3084c24963982080de277a966244", AttemptStatus.QUEUED, sender="+16175550100"
    )


async def test_sms_body_is_utf8_percent_encoded(sms: TwilioSMS) -> None:
    with respx.mock() as router:
        route = router.post(f"{API}/Messages.json").mock(side_effect=message_resource)
        await sms.send(message("é 😞"))
    assert b"Body=%C3%A9+%F0%9F%98%9E" in route.calls.last.request.content


async def test_sms_with_messaging_service_sends_no_from() -> None:
    channel = TwilioSMS(http="httpx", settings=settings(twilio_messaging_service_sid=SERVICE))
    try:
        with respx.mock() as router:
            route = router.post(f"{API}/Messages.json").mock(
                side_effect=lambda request: message_resource(request, "accepted")
            )
            receipt = await channel.send(message("Votre vol est annulé."))
    finally:
        await channel.aclose()
    assert form(route.calls.last.request) == {
        "To": [TO],
        "MessagingServiceSid": [SERVICE],
        "Body": ["Votre vol est annulé."],
        "StatusCallback": [STATUS_CALLBACK],
    }
    assert receipt.status is AttemptStatus.QUEUED


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [
        ("queued", AttemptStatus.QUEUED),
        ("accepted", AttemptStatus.QUEUED),
        ("scheduled", AttemptStatus.QUEUED),
        ("sending", AttemptStatus.QUEUED),
        ("sent", AttemptStatus.SENT),
        ("delivered", AttemptStatus.DELIVERED),
        ("undelivered", AttemptStatus.UNDELIVERED),
        ("failed", AttemptStatus.FAILED),
    ],
)
async def test_sms_receipt_maps_twilio_status(
    sms: TwilioSMS, twilio_status: str, expected: AttemptStatus
) -> None:
    with respx.mock() as router:
        router.post(f"{API}/Messages.json").mock(
            side_effect=lambda request: message_resource(request, twilio_status)
        )
        receipt = await sms.send(message())
    assert receipt.status is expected


async def test_base_url_redirects_the_sdk() -> None:
    channel = TwilioSMS(http="httpx", settings=settings(), base_url="http://127.0.0.1:9999/sim/")
    try:
        with respx.mock(assert_all_called=True) as router:
            router.post(f"http://127.0.0.1:9999/sim/2010-04-01/Accounts/{SID}/Messages.json").mock(
                side_effect=message_resource
            )
            receipt = await channel.send(message())
    finally:
        await channel.aclose()
    assert receipt.provider_id is not None


# -- voice wire format -----------------------------------------------------------------------


async def test_call_form_fields(voice: TwilioVoice) -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.post(f"{API}/Calls.json").mock(side_effect=call_resource)
        receipt = await voice.send(message("Your flight is cancelled.", Medium.VOICE))
    request = route.calls.last.request
    assert_twilio_request(request, "Calls.json")
    assert form(request) == {
        "To": [TO],
        "From": ["+16175550199"],
        "Url": [f"{PUBLIC}/twilio/voice/{ATTEMPT}"],
        "Method": ["POST"],
        "StatusCallback": [STATUS_CALLBACK],
        "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
        "StatusCallbackMethod": ["POST"],
        "MachineDetection": ["DetectMessageEnd"],
    }
    # A list is sent as one field per value, as Twilio documents, never joined.
    assert request.content.count(b"StatusCallbackEvent=") == 4
    assert receipt == Receipt(provider_id=CALL_SID, status=AttemptStatus.QUEUED)


async def test_cancel_hangs_up_the_call(voice: TwilioVoice) -> None:
    completed = json.loads((FIXTURES / "twilio_call.json").read_text()) | {"status": "completed"}
    with respx.mock(assert_all_called=True) as router:
        route = router.post(f"{API}/Calls/{CALL_SID}.json").mock(
            return_value=httpx.Response(200, json=completed)
        )
        await voice.cancel(CALL_SID)
    request = route.calls.last.request
    assert_twilio_request(request, f"Calls/{CALL_SID}.json")
    assert form(request) == {"Status": ["completed"]}


async def test_cancel_raises_mapped_errors(voice: TwilioVoice) -> None:
    with respx.mock() as router:
        router.post(f"{API}/Calls/{CALL_SID}.json").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(TransientDeliveryError):
            await voice.cancel(CALL_SID)


# -- error mapping ---------------------------------------------------------------------------


def legacy(code: int, text: str, status: int = 400) -> dict[str, Any]:
    return {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


ERRORS = [
    pytest.param(
        400,
        legacy(21211, "The 'To' number 5551234567 is not a valid phone number."),
        PermanentDeliveryError,
        "21211",
        id="21211-invalid",
    ),
    pytest.param(
        400,
        legacy(21614, "'To' number is not a valid mobile number"),
        PermanentDeliveryError,
        "21614",
        id="21614-not-mobile",
    ),
    pytest.param(
        400,
        legacy(
            21408,
            "Permission to send an SMS has not been enabled for the region indicated by the "
            "'To' number: +33612345678.",
        ),
        PermanentDeliveryError,
        "21408",
        id="21408-region",
    ),
    pytest.param(
        400,
        legacy(
            21612,
            "Message cannot be sent with the current combination of 'To' and/or 'From' parameters",
        ),
        PermanentDeliveryError,
        "21612",
        id="21612-unreachable",
    ),
    pytest.param(
        400,
        legacy(21606, "The 'From' phone number +16175550100 is not a valid, SMS-capable number"),
        PermanentDeliveryError,
        "21606",
        id="other-4xx",
    ),
    pytest.param(
        404,
        legacy(20404, "The requested resource was not found", 404),
        PermanentDeliveryError,
        "20404",
        id="404",
    ),
    pytest.param(
        401,
        legacy(20003, "Authenticate", 401),
        ConfigurationError,
        "OUTREACH_TWILIO_AUTH_TOKEN",
        id="401",
    ),
    pytest.param(
        403,
        legacy(20003, "Permission Denied", 403),
        ConfigurationError,
        "OUTREACH_TWILIO_ACCOUNT_SID",
        id="403",
    ),
    pytest.param(
        500,
        legacy(20500, "An internal server error has occurred", 500),
        TransientDeliveryError,
        "HTTP 500",
        id="500",
    ),
    pytest.param(503, None, TransientDeliveryError, "HTTP 503", id="503-html"),
    pytest.param(
        400,
        {
            "type": "https://www.twilio.com/docs/errors/21211",
            "title": "Invalid 'To' Phone Number",
            "status": 400,
            "code": 21211,
            "detail": "The 'To' number +1555 is not a valid phone number.",
            "instance": "/2010-04-01/Accounts/AC/Messages.json",
        },
        PermanentDeliveryError,
        "21211",
        id="rfc9457-21211",
    ),
    pytest.param(
        401,
        {
            "type": "https://www.twilio.com/docs/errors/20003",
            "title": "Authentication Error",
            "status": 401,
            "code": 20003,
            "detail": "Your AccountSid or AuthToken was incorrect.",
        },
        ConfigurationError,
        "OUTREACH_TWILIO_AUTH_TOKEN",
        id="rfc9457-401",
    ),
]


@pytest.mark.parametrize(("status", "body", "error", "mentions"), ERRORS)
async def test_twilio_error_answers_map_to_the_tree(
    sms: TwilioSMS, status: int, body: dict[str, Any] | None, error: type[Exception], mentions: str
) -> None:
    answer = (
        httpx.Response(status, json=body)
        if body is not None
        else httpx.Response(status, text="<html>Service Unavailable</html>")
    )
    with respx.mock() as router:
        router.post(f"{API}/Messages.json").mock(return_value=answer)
        with pytest.raises(error) as caught:
            await sms.send(message())
    text = str(caught.value)
    assert type(caught.value) is error  # 5xx is transient but not RateLimited
    assert mentions in text
    assert TOKEN not in text
    assert "5551234567" not in text
    assert "+33612345678" not in text
    assert "+16175550100" not in text
    sdk_error = (
        twilio_exceptions.TwilioServiceException
        if body is not None and "type" in body
        else twilio_exceptions.TwilioRestException
    )
    assert isinstance(caught.value.__cause__, sdk_error)
    if isinstance(caught.value, PermanentDeliveryError):
        assert not caught.value.opt_out


async def test_21610_is_permanent_and_an_opt_out(sms: TwilioSMS) -> None:
    body = legacy(21610, "Attempt to send to unsubscribed recipient")
    with respx.mock() as router:
        router.post(f"{API}/Messages.json").mock(return_value=httpx.Response(400, json=body))
        with pytest.raises(PermanentDeliveryError) as caught:
            await sms.send(message())
    assert caught.value.opt_out is True
    assert "21610" in str(caught.value)


@pytest.mark.parametrize(
    ("headers", "retry_after", "retry_at"),
    [
        pytest.param({"Retry-After": "2"}, timedelta(seconds=2), None, id="seconds"),
        pytest.param({}, None, None, id="absent"),
        pytest.param(
            {"Retry-After": "Mon, 23 Nov 2026 14:00:30 GMT"},
            None,
            datetime(2026, 11, 23, 14, 0, 30, tzinfo=UTC),
            id="http-date",
        ),
        pytest.param({"Retry-After": "soon"}, None, None, id="garbage"),
    ],
)
async def test_429_is_rate_limited_with_the_retry_after_hint(
    sms: TwilioSMS,
    headers: dict[str, str],
    retry_after: timedelta | None,
    retry_at: datetime | None,
) -> None:
    body = legacy(20429, "Too Many Requests", 429)
    with respx.mock() as router:
        router.post(f"{API}/Messages.json").mock(
            return_value=httpx.Response(429, json=body, headers=headers)
        )
        with pytest.raises(RateLimited) as caught:
            await sms.send(message())
    assert caught.value.retry_after == retry_after
    assert caught.value.retry_at == retry_at
    assert "20429" in str(caught.value)


async def test_20429_without_http_429_is_still_rate_limited() -> None:
    error = twilio_exceptions.TwilioRestException(400, "/x", "Too Many Requests", 20429, "POST")
    outcome = map_error(error)
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after is None


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError],
)
async def test_request_that_never_left_is_transient(
    sms: TwilioSMS, failure: type[httpx.HTTPError]
) -> None:
    with respx.mock() as router:
        router.post(f"{API}/Messages.json").mock(side_effect=failure("no route"))
        with pytest.raises(TransientDeliveryError) as caught:
            await sms.send(message())
    assert type(caught.value) is TransientDeliveryError
    assert isinstance(caught.value.__cause__, failure)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.ReadError,
        httpx.WriteError,
        httpx.RemoteProtocolError,
    ],
)
async def test_request_that_may_have_arrived_is_unknown_not_an_error(
    sms: TwilioSMS, voice: TwilioVoice, failure: type[httpx.HTTPError]
) -> None:
    with respx.mock() as router:
        router.post(f"{API}/Messages.json").mock(side_effect=failure("lost"))
        router.post(f"{API}/Calls.json").mock(side_effect=failure("lost"))
        assert await sms.send(message()) == Receipt(None, AttemptStatus.UNKNOWN)
        assert await voice.send(message()) == Receipt(None, AttemptStatus.UNKNOWN)


@pytest.mark.parametrize("status", [502, 504])
async def test_gateway_errors_after_forwarding_are_unknown_not_resent(
    sms: TwilioSMS, voice: TwilioVoice, status: int
) -> None:
    """A 504 (or 502) comes from a gateway that forwarded the request: Twilio may have acted."""
    html = httpx.Response(status, text="<html>Gateway Timeout</html>")
    with respx.mock() as router:
        texts = router.post(f"{API}/Messages.json").mock(return_value=html)
        calls = router.post(f"{API}/Calls.json").mock(
            return_value=httpx.Response(status, json=legacy(status, "Gateway error", status))
        )
        assert await sms.send(message()) == Receipt(None, AttemptStatus.UNKNOWN)
        assert await voice.send(message()) == Receipt(None, AttemptStatus.UNKNOWN)
    assert (texts.call_count, calls.call_count) == (1, 1)


async def test_a_504_is_recorded_unknown_and_never_resent(
    clock: FakeClock, templates_dir: Path
) -> None:
    plan = Plan(
        name="gateway", steps=[Step(channel="sms", template="flight_cancelled", wait="15m")]
    )
    pax = Recipient(id="pax-17", phone=TO)
    with respx.mock() as router:
        route = router.post(f"{API}/Messages.json").mock(
            return_value=httpx.Response(504, text="<html>Gateway Timeout</html>")
        )
        channels = {"sms": TwilioSMS(http="httpx", settings=settings())}
        async with AsyncClient(
            store="memory://", channels=channels, templates=templates_dir, clock=clock
        ) as ox:
            n = await ox.start(pax, plan, context={"flight": "9K 1042"})
            await ox.run_due()
            clock.advance("10m")
            await ox.run_due()
            n = await ox.get(n.id)
            assert route.call_count == 1
            assert [a.status for a in n.attempts] == [AttemptStatus.UNKNOWN]
            clock.advance("10m")  # the wait runs out: counted as sent, not retried
            await ox.run_due()
            n = await ox.get(n.id)
    assert route.call_count == 1
    assert [a.status for a in n.attempts] == [AttemptStatus.UNKNOWN]
    assert n.status is Status.EXHAUSTED


async def test_2xx_that_is_not_json_is_unknown(sms: TwilioSMS) -> None:
    with respx.mock() as router:
        router.post(f"{API}/Messages.json").mock(return_value=httpx.Response(201, text="<html>"))
        assert await sms.send(message()) == Receipt(None, AttemptStatus.UNKNOWN)


async def test_bad_base_url_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="OUTREACH_TWILIO_BASE_URL"):
        TwilioSMS(http="httpx", settings=settings(twilio_base_url="api.twilio.com"))


def _all_exception_classes() -> list[type[Exception]]:
    modules = (httpx, twilio_exceptions)
    found = {
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    return sorted(found | {json.JSONDecodeError}, key=lambda cls: cls.__qualname__)


def _instance(cls: type[Exception]) -> Exception:
    request = httpx.Request("POST", f"{API}/Messages.json")
    factories: dict[type[Exception], Callable[[], Exception]] = {
        httpx.HTTPStatusError: lambda: httpx.HTTPStatusError(
            "503", request=request, response=httpx.Response(503, request=request)
        ),
        twilio_exceptions.TwilioRestException: lambda: twilio_exceptions.TwilioRestException(
            418, "/x", "I'm a teapot", 418, "POST"
        ),
        twilio_exceptions.TwilioServiceException: lambda: twilio_exceptions.TwilioServiceException(
            "about:blank", "Teapot", 418, 418
        ),
        json.JSONDecodeError: lambda: json.JSONDecodeError("Expecting value", "<html>", 0),
    }
    if cls in factories:
        return factories[cls]()
    try:
        return cls("boom")
    except TypeError:
        return cls()


@pytest.mark.parametrize("cls", _all_exception_classes(), ids=lambda cls: cls.__qualname__)
def test_no_httpx_or_twilio_exception_escapes_unmapped(cls: type[Exception]) -> None:
    outcome = map_error(_instance(cls), channel="twilio-sms")
    assert isinstance(outcome, OutreachError | Receipt), cls
    if isinstance(outcome, Receipt):
        assert outcome == Receipt(None, AttemptStatus.UNKNOWN)


@pytest.mark.parametrize("cls", _all_exception_classes(), ids=lambda cls: cls.__qualname__)
async def test_no_exception_from_the_transport_escapes_send(
    sms: TwilioSMS, cls: type[Exception]
) -> None:
    with respx.mock() as router:
        router.post(f"{API}/Messages.json").mock(side_effect=_instance(cls))
        try:
            receipt = await sms.send(message())
        except OutreachError:
            return
    assert receipt.status is AttemptStatus.UNKNOWN


def test_problem_details_without_a_usable_status_are_transient() -> None:
    error = twilio_exceptions.TwilioServiceException("about:blank", "Oops", None, None)
    assert type(map_error(error)) is TransientDeliveryError


def test_unrelated_exceptions_are_not_swallowed() -> None:
    assert map_error(KeyError("bug")) is None


# -- settings --------------------------------------------------------------------------------


async def test_adapters_default_to_outreach_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("OUTREACH_TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("OUTREACH_TWILIO_FROM", FROM)
    monkeypatch.setenv("OUTREACH_TWILIO_BASE_URL", "https://api.dublin.ie1.twilio.com")
    sms, voice = TwilioSMS(http="httpx"), TwilioVoice(http="httpx")
    try:
        assert (sms.account_sid, sms.from_, sms.messaging_service_sid) == (SID, FROM, None)
        assert voice.from_ == FROM  # no OUTREACH_TWILIO_VOICE_FROM: the SMS sender
        assert sms.base_url == voice.base_url == "https://api.dublin.ie1.twilio.com"
        assert (sms.medium, voice.medium) == (Medium.SMS, Medium.VOICE)
        assert (sms.rate, sms.max_in_flight, voice.rate, voice.max_in_flight) == (1.0, 100, 1.0, 20)
        assert (sms.name, voice.name) == ("twilio-sms", "twilio-voice")
        assert TOKEN not in repr(sms)
        assert TOKEN not in repr(voice)
        with respx.mock(assert_all_called=True) as router:
            route = router.post(
                f"https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
            ).mock(side_effect=message_resource)
            await sms.send(message())
        assert route.calls.last.request.headers["Authorization"] == BASIC
    finally:
        await sms.aclose()
        await voice.aclose()


async def test_arguments_and_settings_object_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTREACH_TWILIO_ACCOUNT_SID", "ACenvironment")
    monkeypatch.setenv("OUTREACH_TWILIO_VOICE_FROM", "+16175550111")
    voice = TwilioVoice(
        http="httpx", settings=settings(twilio_voice_from="+16175550199"), rate=None
    )
    sms = TwilioSMS(http="httpx", settings=settings(), from_="+16175550222", max_in_flight=7)
    try:
        assert (voice.account_sid, voice.from_, voice.rate) == (SID, "+16175550199", None)
        assert (sms.from_, sms.max_in_flight) == ("+16175550222", 7)
    finally:
        await voice.aclose()
        await sms.aclose()


@pytest.mark.parametrize(
    ("factory", "missing", "env"),
    [
        (TwilioSMS, "twilio_account_sid", "OUTREACH_TWILIO_ACCOUNT_SID"),
        (TwilioSMS, "twilio_auth_token", "OUTREACH_TWILIO_AUTH_TOKEN"),
        (TwilioSMS, "twilio_from", "OUTREACH_TWILIO_MESSAGING_SERVICE_SID"),
        (TwilioVoice, "twilio_account_sid", "OUTREACH_TWILIO_ACCOUNT_SID"),
        (TwilioVoice, "twilio_auth_token", "OUTREACH_TWILIO_AUTH_TOKEN"),
        (TwilioVoice, "twilio_from", "OUTREACH_TWILIO_VOICE_FROM"),
    ],
)
def test_missing_settings_name_the_variable_to_set(
    factory: Callable[..., object], missing: str, env: str
) -> None:
    with pytest.raises(ConfigurationError, match=env) as caught:
        factory(settings=settings(**{missing: None}))
    assert TOKEN not in str(caught.value)


async def test_aclose_closes_every_shard(sms: TwilioSMS) -> None:
    await sms.aclose()
    assert all(client.is_closed for client in sms._pool._clients)


# -- TwiML -----------------------------------------------------------------------------------

GATHER = f"{PUBLIC}/twilio/voice/{ATTEMPT}/gather"


def test_call_twiml_says_the_message_then_asks_the_menu_twice() -> None:
    root = ET.fromstring(call_twiml("Your flight is cancelled.", OPTIONS, gather_url=GATHER))
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Say", "Gather", "Gather", "Say", "Hangup"]
    assert root[0].text == "Your flight is cancelled."
    assert root[0].get("language") == "en-US"
    for gather in root.findall("Gather"):
        assert gather.attrib == {"numDigits": "1", "action": GATHER, "method": "POST"}
        (say,) = list(gather)
        assert say.tag == "Say"
        assert say.get("language") == "en-US"
        assert say.text == "Press 1: Rebook me. Press 2: Refund. Press 3: Taxi to my destination."
    assert root[3].text == "Goodbye."


def test_call_twiml_in_french_escapes_text() -> None:
    twiml = call_twiml("Vol annulé <9K> & retard", OPTIONS[:1], gather_url=GATHER, locale="fr")
    root = ET.fromstring(twiml)
    assert root[0].text == "Vol annulé <9K> & retard"
    assert {say.get("language") for say in root.iter("Say")} == {"fr-FR"}
    assert root[1][0].text == "Appuyez sur 1 : Rebook me."


LOCALES = ["en", "en-GB", "en_au", "en-IN", "fr", "fr-CA", "es", "es-MX", "es-US", "de", "pt",
           "pt-PT", "it", "nl"]  # fmt: skip


@pytest.mark.parametrize("locale", [*LOCALES, *SAY_VOICES])
def test_call_twiml_says_every_language_in_a_voice_that_speaks_it(locale: str) -> None:
    """Twilio's default voice does not speak pt-BR, fr-CA, es-MX...: every ``<Say>`` names the
    table's voice for its language, and every voice in the table is of its language."""
    root = ET.fromstring(call_twiml("Hello.", OPTIONS, gather_url=GATHER, locale=locale))
    language = twilio_language(locale)
    says = list(root.iter("Say"))
    assert len(says) == 4
    for say in says:
        assert (say.get("language"), say.get("voice")) == (language, SAY_VOICES[language])
        assert voice_language(SAY_VOICES[language]) == language


def test_call_twiml_speaks_brazilian_portuguese_with_camila() -> None:
    root = ET.fromstring(call_twiml("Olá.", OPTIONS, gather_url=GATHER, locale="pt-BR"))
    assert {(s.get("language"), s.get("voice")) for s in root.iter("Say")} == {
        ("pt-BR", "Polly.Camila")
    }


def test_twilio_voice_takes_voices_per_language_and_refuses_a_mismatched_pair() -> None:
    voice = TwilioVoice(
        http="httpx",
        settings=settings(twilio_voice_from="+16175550199"),
        voices={"fr-CA": "Google.fr-CA-Standard-A", "en-US": "Polly.Matthew"},
    )
    assert voice.voices["fr-CA"] == "Google.fr-CA-Standard-A"
    assert voice.voices["en-US"] == "Polly.Matthew"
    assert voice.voices["pt-BR"] == SAY_VOICES["pt-BR"]  # the rest stay as they were
    root = ET.fromstring(
        call_twiml("Bonjour.", (), gather_url=GATHER, locale="fr-CA", voices=voice.voices)
    )
    assert {s.get("voice") for s in root.iter("Say")} == {"Google.fr-CA-Standard-A"}
    bad = [
        ({"fr-CA": "Polly.Joanna"}, "'Polly.Joanna' speaks en-US"),
        ({"fr-CA": "Google.fr-FR-Standard-A"}, "speaks fr-FR"),
        ({"xx-YY": "Polly.Joanna"}, "'xx-YY'"),
        ({"fr-CA": ""}, "'fr-CA'"),
    ]
    for voices, named in bad:
        with pytest.raises(ConfigurationError, match=re.escape(named)):
            TwilioVoice(
                http="httpx", settings=settings(twilio_voice_from="+16175550199"), voices=voices
            )


def test_call_twiml_without_options_asks_for_any_key() -> None:
    root = ET.fromstring(call_twiml("Hello.", (), gather_url=GATHER))
    assert [g[0].text for g in root.findall("Gather")] == ["Press any key to confirm."] * 2


def test_call_twiml_for_voicemail_says_the_text_and_hangs_up() -> None:
    root = ET.fromstring(
        call_twiml("Your flight is cancelled.", OPTIONS, gather_url=GATHER, voicemail=True)
    )
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == "Your flight is cancelled."
    assert root.find(".//Gather") is None


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("en", "en-US"),
        ("fr", "fr-FR"),
        ("es", "es-ES"),
        ("de", "de-DE"),
        ("pt", "pt-BR"),
        ("it", "it-IT"),
        ("fr-CA", "fr-CA"),
        ("fr_ca", "fr-CA"),
        ("en-GB", "en-GB"),
        ("fr-BE", "fr-FR"),
        ("DE", "de-DE"),
        ("nl", "en-US"),
        ("", "en-US"),
    ],
)
def test_twilio_language(locale: str, language: str) -> None:
    assert twilio_language(locale) == language
