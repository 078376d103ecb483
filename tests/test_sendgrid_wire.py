"""SendGridEmail on the wire (respx): the exact Mail Send request, and every failure mapped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from outreach import AsyncClient, Plan, Status, Step
from outreach._models import AttemptStatus, Medium, Option, Recipient
from outreach._settings import Settings
from outreach._templates import Templates
from outreach.channels._base import Message, Receipt
from outreach.channels.sendgrid import SendGridEmail
from outreach.exceptions import (
    ConfigurationError,
    OutreachError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from outreach.testing import FakeClock

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
URL = "https://api.sendgrid.com/v3/mail/send"
KEY = "SG.test-key.s3cret"
SMALL = 5  # one shard: HttpPool builds an SSL context per shard (~20 ms each)
FROM = "Cape Air <noreply@capeair.example>"
OPTIONS = (
    Option(key="1", label="Rebook me"),
    Option(key="2", label="Refund"),
    Option(key="3", label="Taxi to my destination"),
)
ACK = "https://ox.example/ack/tok-ack"
OPTION_URLS = {o.key: f"https://ox.example/ack/tok-{o.key}" for o in OPTIONS}
UNSUBSCRIBE = "https://ox.example/unsubscribe/tok-unsub"


@pytest.fixture(autouse=True)
def _no_sendgrid_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("API_KEY", "FROM", "BASE_URL"):
        monkeypatch.delenv(f"OUTREACH_SENDGRID_{var}", raising=False)


@pytest.fixture
async def channel() -> AsyncIterator[SendGridEmail]:
    ch = SendGridEmail(http="httpx", api_key=KEY, from_email=FROM, max_in_flight=SMALL)
    yield ch
    await ch.aclose()


@pytest.fixture
async def unsubscribing() -> AsyncIterator[SendGridEmail]:
    ch = SendGridEmail(
        http="httpx", api_key=KEY, from_email=FROM, list_unsubscribe=True, max_in_flight=SMALL
    )
    yield ch
    await ch.aclose()


def rendered(template: str, *, first_name: str) -> Message:
    recipient = Recipient(id="pax-17", email="zoe@b.example", attributes={"first_name": first_name})
    context = {
        "flight": "9K 1042",
        "recipient": recipient,
        "options": OPTIONS,
        "ack_url": ACK,
        "option_urls": OPTION_URLS,
    }
    r = Templates(TEMPLATES).render(template, Medium.EMAIL, context, locale="en")
    return Message(
        notification_id="n-1",
        attempt_id="a-1",
        medium=Medium.EMAIL,
        to="zoe@b.example",
        body=r.body,
        subject=r.subject,
        html=r.html,
        options=OPTIONS,
        ack_url=ACK,
        option_urls=OPTION_URLS,
        unsubscribe_url=UNSUBSCRIBE,
    )


FRENCH = Message(
    notification_id="n-2",
    attempt_id="a-2",
    medium=Medium.EMAIL,
    to="hélène@exemple.fr",
    subject="Vol 9K 1042 annulé : choisissez la suite",
    body=(
        "Bonjour Hélène,\n\nNous sommes désolés : le vol 9K 1042 est annulé.\n"
        "  1. Me réacheminer\n  2. Être remboursé\n  3. Taxi jusqu'à ma destination\n\n"
        f"Choisissez ici : {ACK}"
    ),
    html=f'<p>Bonjour Hélène, le vol 9K 1042 est annulé. <a href="{ACK}">Choisir</a></p>',
    locale="fr",
    options=OPTIONS,
    ack_url=ACK,
    option_urls=OPTION_URLS,
    unsubscribe_url=UNSUBSCRIBE,
)


def accepted(message_id: str = "x-msg-1") -> httpx.Response:
    return httpx.Response(202, headers={"X-Message-Id": message_id})


def sendgrid_error(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"errors": [{"message": message, "field": field, "help": None}]}
    return httpx.Response(status, json=body, headers=headers)


def sent_json(route: respx.Route) -> dict[str, Any]:
    request = route.calls.last.request
    assert request.headers["Content-Type"] == "application/json"
    payload: dict[str, Any] = json.loads(request.content.decode("utf-8"))
    return payload


# -- the request ------------------------------------------------------------------------------


async def test_english_email_with_html(
    respx_mock: respx.MockRouter, channel: SendGridEmail
) -> None:
    route = respx_mock.post(URL).mock(return_value=accepted("14c5d75ce93.dfd.64b469"))
    message = rendered("flight_cancelled", first_name="Zoë")
    assert message.html is not None

    receipt = await channel.send(message)

    assert receipt == Receipt(
        provider_id="14c5d75ce93.dfd.64b469",
        status=AttemptStatus.QUEUED,
        sender="noreply@capeair.example",
    )
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert sent_json(route) == {
        "from": {"name": "Cape Air", "email": "noreply@capeair.example"},
        "subject": "Flight 9K 1042 is cancelled: choose what happens next",
        "personalizations": [{"to": [{"email": "zoe@b.example"}]}],
        "content": [
            {"type": "text/plain", "value": message.body},
            {"type": "text/html", "value": message.html},
        ],
        "custom_args": {"outreach_notification_id": "n-1", "outreach_attempt_id": "a-1"},
    }
    assert "Hello Zoë," in message.body
    assert ACK in message.body
    assert f'href="{ACK}"' in message.html
    assert message.body.count(ACK) == 1  # the adapter adds no links of its own


async def test_french_email_with_one_click_unsubscribe(
    respx_mock: respx.MockRouter, unsubscribing: SendGridEmail
) -> None:
    route = respx_mock.post(URL).mock(return_value=accepted())

    receipt = await unsubscribing.send(FRENCH)

    assert receipt.status is AttemptStatus.QUEUED
    raw = route.calls.last.request.content
    assert "Hélène".encode() in raw  # UTF-8 on the wire
    payload = sent_json(route)
    assert payload["personalizations"][0]["to"][0]["email"] == "hélène@exemple.fr"
    assert payload["from"]["email"] == "noreply@capeair.example"
    assert payload["subject"] == "Vol 9K 1042 annulé : choisissez la suite"
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert payload["content"][0]["value"] == FRENCH.body
    assert payload["content"][1]["value"] == FRENCH.html
    assert payload["headers"] == {
        "List-Unsubscribe": f"<{UNSUBSCRIBE}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert payload["custom_args"] == {
        "outreach_notification_id": "n-2",
        "outreach_attempt_id": "a-2",
    }


async def test_email_without_html(respx_mock: respx.MockRouter, channel: SendGridEmail) -> None:
    route = respx_mock.post(URL).mock(return_value=accepted())
    message = rendered("refund_check", first_name="Ann")
    assert message.html is None

    await channel.send(message)

    payload = sent_json(route)
    assert payload["subject"] == "Your refund for flight 9K 1042"
    assert payload["content"] == [{"type": "text/plain", "value": message.body}]
    assert "headers" not in payload  # list_unsubscribe is off by default


async def test_no_unsubscribe_headers_without_a_url(
    respx_mock: respx.MockRouter, unsubscribing: SendGridEmail
) -> None:
    route = respx_mock.post(URL).mock(return_value=accepted())
    await unsubscribing.send(Message("n", "a", Medium.EMAIL, "a@b.example", "Hi", subject="S"))
    assert "headers" not in sent_json(route)


async def test_custom_args_prefix_and_string_values(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(URL).mock(return_value=accepted())
    ch = SendGridEmail(
        http="httpx",
        api_key=KEY,
        from_email="n@x.example",
        custom_args_prefix="nx_",
        max_in_flight=SMALL,
    )
    try:
        await ch.send(Message("17", "42", Medium.EMAIL, "a@b.example", "Hi", subject="S"))
    finally:
        await ch.aclose()
    args = sent_json(route)["custom_args"]
    assert args == {"nx_notification_id": "17", "nx_attempt_id": "42"}
    assert all(isinstance(v, str) for v in args.values())


async def test_empty_html_part_is_left_out(
    respx_mock: respx.MockRouter, channel: SendGridEmail
) -> None:
    route = respx_mock.post(URL).mock(return_value=accepted())
    await channel.send(Message("n", "a", Medium.EMAIL, "a@b.example", "Hi", subject="S", html=""))
    assert [c["type"] for c in sent_json(route)["content"]] == ["text/plain"]


async def test_missing_message_id_still_queued(
    respx_mock: respx.MockRouter, channel: SendGridEmail
) -> None:
    respx_mock.post(URL).mock(return_value=httpx.Response(202))
    receipt = await channel.send(FRENCH)
    assert receipt == Receipt(
        provider_id=None, status=AttemptStatus.QUEUED, sender="noreply@capeair.example"
    )


# -- provider errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "field", "expected"),
    [
        (
            400,
            "The from address does not match a verified Sender Identity.",
            "from",
            PermanentDeliveryError,
        ),
        (
            400,
            "Invalid type. Expected: object, given: string.",
            "custom_args",
            PermanentDeliveryError,
        ),
        (401, "The provided authorization grant is invalid, expired, or revoked", None, None),
        (403, "access forbidden", None, None),
        (413, "The JSON payload you have included in your request is too large.", None, None),
        (500, "Internal server error", None, TransientDeliveryError),
        (503, "Service unavailable", None, TransientDeliveryError),
    ],
)
async def test_error_table(
    respx_mock: respx.MockRouter,
    channel: SendGridEmail,
    status: int,
    message: str,
    field: str | None,
    expected: type[OutreachError] | None,
) -> None:
    respx_mock.post(URL).mock(return_value=sendgrid_error(status, message, field))
    if expected is None:
        expected = ConfigurationError if status in (401, 403) else PermanentDeliveryError

    with pytest.raises(expected) as info:
        await channel.send(FRENCH)

    text = str(info.value)
    assert type(info.value) is expected
    assert str(status) in text
    assert message in text
    if field:
        assert f"field: {field}" in text
    if status in (401, 403):
        assert "OUTREACH_SENDGRID_API_KEY" in text
    assert KEY not in text
    assert "s3cret" not in text


async def test_5xx_honours_retry_after(
    respx_mock: respx.MockRouter, channel: SendGridEmail
) -> None:
    response = sendgrid_error(503, "Service unavailable", headers={"Retry-After": "30"})
    respx_mock.post(URL).mock(return_value=response)
    with pytest.raises(TransientDeliveryError) as info:
        await channel.send(FRENCH)
    assert info.value.retry_after == timedelta(seconds=30)


async def test_non_json_error_body(respx_mock: respx.MockRouter, channel: SendGridEmail) -> None:
    page = httpx.Response(503, text="<html>Service Unavailable</html>")
    respx_mock.post(URL).mock(return_value=page)
    with pytest.raises(TransientDeliveryError, match=r"HTTP 503: Service Unavailable$"):
        await channel.send(FRENCH)


@pytest.mark.parametrize("status", [502, 504])
async def test_gateway_errors_after_forwarding_are_unknown(
    respx_mock: respx.MockRouter, channel: SendGridEmail, status: int
) -> None:
    """A 504 (or 502) comes from a gateway that forwarded the request: SendGrid may have
    queued the email, so it is recorded unknown like a read timeout."""
    route = respx_mock.post(URL).mock(return_value=httpx.Response(status, text="<html>"))
    assert await channel.send(FRENCH) == Receipt(provider_id=None, status=AttemptStatus.UNKNOWN)
    assert route.call_count == 1


async def test_a_504_is_recorded_unknown_and_never_resent(
    respx_mock: respx.MockRouter, clock: FakeClock, templates_dir: Path
) -> None:
    route = respx_mock.post(URL).mock(
        return_value=httpx.Response(504, text="<html>Gateway Timeout</html>")
    )
    plan = Plan(
        name="gateway", steps=[Step(channel="email", template="flight_cancelled", wait="30m")]
    )
    channels = {
        "email": SendGridEmail(http="httpx", api_key=KEY, from_email=FROM, max_in_flight=SMALL)
    }
    async with AsyncClient(
        store="memory://", channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        n = await ox.start(
            Recipient(id="pax-17", email="zoe@b.example"), plan, context={"flight": "9K 1042"}
        )
        await ox.run_due()
        clock.advance("10m")
        await ox.run_due()
        assert route.call_count == 1
        assert [a.status for a in (await ox.get(n.id)).attempts] == [AttemptStatus.UNKNOWN]
        clock.advance("25m")  # the wait runs out: counted as sent, never resent blindly
        await ox.run_due()
        n = await ox.get(n.id)
    assert route.call_count == 1
    assert [a.status for a in n.attempts] == [AttemptStatus.UNKNOWN]
    assert n.status is Status.EXHAUSTED


async def test_addresses_are_masked_in_error_text(
    respx_mock: respx.MockRouter, channel: SendGridEmail
) -> None:
    response = sendgrid_error(400, "hélène@exemple.fr is not valid", "personalizations.0.to.0")
    respx_mock.post(URL).mock(return_value=response)
    with pytest.raises(PermanentDeliveryError) as info:
        await channel.send(FRENCH)
    assert "hélène@exemple.fr" not in str(info.value)
    assert "h*****@exemple.fr" in str(info.value)


RESET = 1795444200  # 2026-11-23T14:30:00Z


@pytest.mark.parametrize(
    ("headers", "retry_after", "retry_at"),
    [
        ({"X-RateLimit-Reset": str(RESET)}, None, datetime(2026, 11, 23, 14, 30, tzinfo=UTC)),
        (
            {"X-RateLimit-Reset": str(RESET), "Retry-After": "2"},
            None,
            datetime(2026, 11, 23, 14, 30, tzinfo=UTC),
        ),
        ({"Retry-After": "2"}, timedelta(seconds=2), None),
        ({}, None, None),
    ],
    ids=["reset", "reset-wins", "retry-after", "neither"],
)
async def test_429(
    respx_mock: respx.MockRouter,
    channel: SendGridEmail,
    headers: dict[str, str],
    retry_after: timedelta | None,
    retry_at: datetime | None,
) -> None:
    response = sendgrid_error(429, "too many requests", headers=headers)
    respx_mock.post(URL).mock(return_value=response)

    with pytest.raises(RateLimited) as info:
        await channel.send(FRENCH)

    assert info.value.retry_after == retry_after
    assert info.value.retry_at == retry_at
    if retry_at is not None:
        assert info.value.retry_at is not None
        assert info.value.retry_at.utcoffset() == timedelta(0)
        assert info.value.retry_at.timestamp() == RESET
    assert "too many requests" in str(info.value)


# -- transport failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError]
)
async def test_not_sent_is_transient(
    respx_mock: respx.MockRouter, channel: SendGridEmail, exc: type[Exception]
) -> None:
    respx_mock.post(URL).mock(side_effect=exc)
    with pytest.raises(TransientDeliveryError) as info:
        await channel.send(FRENCH)
    assert type(info.value) is TransientDeliveryError
    assert isinstance(info.value.__cause__, exc)


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError],
)
async def test_maybe_sent_is_unknown(
    respx_mock: respx.MockRouter, channel: SendGridEmail, exc: type[Exception]
) -> None:
    respx_mock.post(URL).mock(side_effect=exc)
    receipt = await channel.send(FRENCH)
    assert receipt == Receipt(provider_id=None, status=AttemptStatus.UNKNOWN)


def _httpx_exceptions() -> list[type[Exception]]:
    found = [getattr(httpx, name) for name in httpx.__all__]
    return [obj for obj in found if isinstance(obj, type) and issubclass(obj, Exception)]


def _instance(cls: type[Exception], request: httpx.Request) -> Exception:
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=request, response=httpx.Response(503, request=request))
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=request)
    try:
        return cls("boom")
    except TypeError:
        return cls()


def test_httpx_exceptions_are_enumerated() -> None:
    names = {cls.__name__ for cls in _httpx_exceptions()}
    assert {"HTTPError", "ConnectError", "ReadTimeout", "InvalidURL", "StreamError"} <= names


@pytest.mark.parametrize("cls", _httpx_exceptions(), ids=lambda cls: cls.__name__)
async def test_no_httpx_exception_escapes(cls: type[Exception]) -> None:
    """Every exception httpx defines ends in our tree or as an ``unknown`` receipt."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise _instance(cls, request)

    ch = SendGridEmail(
        http="httpx", api_key=KEY, from_email=FROM, transport=httpx.MockTransport(handler)
    )
    try:
        receipt = await ch.send(FRENCH)
    except OutreachError:
        pass
    else:
        assert receipt == Receipt(provider_id=None, status=AttemptStatus.UNKNOWN)
    finally:
        await ch.aclose()


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (httpx.UnsupportedProtocol, ConfigurationError),
        (httpx.LocalProtocolError, PermanentDeliveryError),
        (httpx.HTTPStatusError, TransientDeliveryError),  # mapped by its 503 response
    ],
)
async def test_other_httpx_mappings(cls: type[Exception], expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise _instance(cls, request)

    ch = SendGridEmail(
        http="httpx", api_key=KEY, from_email=FROM, transport=httpx.MockTransport(handler)
    )
    try:
        with pytest.raises(expected):
            await ch.send(FRENCH)
    finally:
        await ch.aclose()


# -- configuration ----------------------------------------------------------------------------


async def test_settings_from_env(
    monkeypatch: pytest.MonkeyPatch, respx_mock: respx.MockRouter
) -> None:
    monkeypatch.setenv("OUTREACH_SENDGRID_API_KEY", "SG.env.key")
    monkeypatch.setenv("OUTREACH_SENDGRID_FROM", "alerts@capeair.example")
    monkeypatch.setenv("OUTREACH_SENDGRID_BASE_URL", "https://api.eu.sendgrid.com/")
    route = respx_mock.post("https://api.eu.sendgrid.com/v3/mail/send").mock(
        return_value=accepted()
    )
    ch = SendGridEmail(http="httpx")
    try:
        await ch.send(FRENCH)
    finally:
        await ch.aclose()
    assert route.calls.last.request.headers["Authorization"] == "Bearer SG.env.key"
    assert sent_json(route)["from"] == {"email": "alerts@capeair.example"}
    assert ch.medium is Medium.EMAIL
    assert (ch.rate, ch.max_in_flight, ch.name) == (None, 100, "sendgrid")


async def test_settings_argument_wins_over_env_and_arguments_over_settings(
    monkeypatch: pytest.MonkeyPatch, respx_mock: respx.MockRouter
) -> None:
    monkeypatch.setenv("OUTREACH_SENDGRID_API_KEY", "SG.env.key")
    monkeypatch.setenv("OUTREACH_SENDGRID_FROM", "env@capeair.example")
    route = respx_mock.post(URL).mock(return_value=accepted())
    settings = Settings(sendgrid_api_key="SG.settings.key", sendgrid_from="s@capeair.example")
    ch = SendGridEmail(
        http="httpx",
        settings=settings,
        from_email="arg@capeair.example",
        rate=10.0,
        max_in_flight=SMALL,
    )
    try:
        await ch.send(FRENCH)
    finally:
        await ch.aclose()
    assert route.calls.last.request.headers["Authorization"] == "Bearer SG.settings.key"
    assert sent_json(route)["from"] == {"email": "arg@capeair.example"}
    assert ch.rate == 10.0


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"OUTREACH_SENDGRID_FROM": "a@capeair.example"}, "OUTREACH_SENDGRID_API_KEY"),
        ({"OUTREACH_SENDGRID_API_KEY": "SG.k.k"}, "OUTREACH_SENDGRID_FROM"),
        (
            {"OUTREACH_SENDGRID_API_KEY": "SG.k.k", "OUTREACH_SENDGRID_FROM": "no address"},
            "OUTREACH_SENDGRID_FROM",
        ),
        (
            {
                "OUTREACH_SENDGRID_API_KEY": "SG.k.k",
                "OUTREACH_SENDGRID_FROM": "a@capeair.example",
                "OUTREACH_SENDGRID_BASE_URL": "api.sendgrid.com",
            },
            "OUTREACH_SENDGRID_BASE_URL",
        ),
    ],
)
def test_missing_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], setting: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=setting):
        SendGridEmail(http="httpx")


async def test_repr_hides_the_key(channel: SendGridEmail) -> None:
    assert KEY not in repr(channel)


async def test_aclose_closes_the_pool(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(URL).mock(return_value=accepted())
    ch = SendGridEmail(http="httpx", api_key=KEY, from_email=FROM, max_in_flight=7)
    await ch.send(FRENCH)
    await ch.aclose()
    with pytest.raises(RuntimeError):  # httpx refuses to send on a closed client
        await ch.send(FRENCH)


async def test_body_holding_an_api_key_is_refused_before_sending(
    respx_mock: respx.MockRouter, channel: SendGridEmail
) -> None:
    route = respx_mock.post(URL).mock(return_value=accepted())
    leaky = Message("n", "a", Medium.EMAIL, "a@b.example", "SG.abc.def oops", subject="S")
    with pytest.raises(PermanentDeliveryError, match="helper refused"):
        await channel.send(leaky)
    assert not route.called
