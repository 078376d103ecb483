"""Twilio SMS and voice adapters: the official SDK on our sharded httpx pool.

The SDK builds the requests and parses the responses; :class:`_PoolHttpClient` carries them
over :class:`~outreach.channels._http.HttpPool` (long-lived pooled connections, explicit
timeouts, interceptable by respx). Every failure is translated by :func:`map_error`: an
``OutreachError`` to raise, or an ``unknown`` :class:`Receipt` when the request may have reached
Twilio (a blind resend could text the customer twice; the status callback reconciles it).
"""

from __future__ import annotations

import enum
import inspect
import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Final, TypedDict, TypeVar, Unpack

import httpx
import phonenumbers
from pydantic import SecretStr
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http import AsyncHttpClient
from twilio.http.response import (
    Response as TwilioResponse,
)
from twilio.rest import Client as TwilioClient

from outreach._models import AttemptStatus, Medium
from outreach._redact import mask
from outreach._settings import Settings
from outreach._urls import PublicUrls
from outreach.channels._base import Channel, Message, Receipt
from outreach.channels._http import Backend, Pool, make_pool
from outreach.channels._options import adapter_settings, check_base_url, check_pacing
from outreach.exceptions import (
    ConfigurationError,
    OutreachError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)

__all__ = ["TwilioSMS", "TwilioVoice", "map_error"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

UNKNOWN: Final = Receipt(provider_id=None, status=AttemptStatus.UNKNOWN)
"""The outcome of a request that may or may not have reached Twilio."""

_CALL_EVENTS: Final = ("initiated", "ringing", "answered", "completed")
_CREDENTIALS_HINT: Final = (
    "set OUTREACH_TWILIO_ACCOUNT_SID and OUTREACH_TWILIO_AUTH_TOKEN "
    "(or pass account_sid=/auth_token=) to a valid pair"
)

# -- error mapping ---------------------------------------------------------------------------


class _Kind(enum.Enum):
    TRANSIENT = "transient"
    UNKNOWN = "unknown"
    PERMANENT = "permanent"
    OPT_OUT = "opt_out"
    RATE_LIMITED = "rate_limited"
    CREDENTIALS = "credentials"
    BASE_URL = "base_url"


_TRANSPORT_ERRORS: Final[Mapping[type[BaseException], _Kind]] = {
    # The request never left: safe to retry.
    httpx.ConnectError: _Kind.TRANSIENT,
    httpx.ConnectTimeout: _Kind.TRANSIENT,
    httpx.PoolTimeout: _Kind.TRANSIENT,
    httpx.ProxyError: _Kind.TRANSIENT,
    httpx.LocalProtocolError: _Kind.TRANSIENT,
    # The URL cannot work: the setting is wrong.
    httpx.UnsupportedProtocol: _Kind.BASE_URL,
    httpx.InvalidURL: _Kind.BASE_URL,
    httpx.TooManyRedirects: _Kind.BASE_URL,
    # The request may have reached Twilio: record unknown, let the status callback decide.
    httpx.ReadTimeout: _Kind.UNKNOWN,
    httpx.WriteTimeout: _Kind.UNKNOWN,
    httpx.ReadError: _Kind.UNKNOWN,
    httpx.WriteError: _Kind.UNKNOWN,
    httpx.RemoteProtocolError: _Kind.UNKNOWN,
    httpx.CloseError: _Kind.UNKNOWN,
    httpx.DecodingError: _Kind.UNKNOWN,
    # Anything else httpx may add later: assume the worst case for duplicates.
    httpx.HTTPError: _Kind.UNKNOWN,
    httpx.StreamError: _Kind.UNKNOWN,
    httpx.CookieConflict: _Kind.UNKNOWN,
    # A 2xx whose body is not JSON: the message may well exist.
    json.JSONDecodeError: _Kind.UNKNOWN,
    # SDK errors that carry no HTTP answer (abstract client, pagination).
    TwilioException: _Kind.TRANSIENT,
}
"""httpx and SDK exceptions by class; a subclass not listed takes its nearest listed base."""

_API_CODES: Final[Mapping[int, tuple[_Kind, str]]] = {
    21211: (_Kind.PERMANENT, "the 'To' number is not a valid phone number"),
    21614: (_Kind.PERMANENT, "the 'To' number is not a mobile number"),
    21408: (_Kind.PERMANENT, "the account may not send to the 'To' number's region"),
    21612: (_Kind.PERMANENT, "the 'To' number cannot be reached from this sender"),
    21610: (_Kind.OPT_OUT, "the recipient replied STOP to this sender"),
    20429: (_Kind.RATE_LIMITED, "too many concurrent API requests"),
    20003: (_Kind.CREDENTIALS, "authentication failed"),
}
"""Twilio error codes with a fixed meaning, checked before the HTTP status."""

_API_STATUSES: Final[Mapping[int, _Kind]] = {
    401: _Kind.CREDENTIALS,
    403: _Kind.CREDENTIALS,
    429: _Kind.RATE_LIMITED,
    # A gateway forwarded the request, then lost Twilio's answer (502: a broken one, 504: none
    # in time): the message or call may exist, as after a read timeout. A 503 stays transient:
    # "unavailable" is said before the request is taken on (Twilio's own, or a load balancer
    # with no healthy backend), and other 5xx are Twilio's own failures (providers.md §5).
    502: _Kind.UNKNOWN,
    504: _Kind.UNKNOWN,
}

_PHONE: Final = re.compile(r"\+?\d{6,}")


def _scrub(text: str) -> str:
    """Twilio's messages echo the phone number: mask it before it reaches a log or a store."""
    return _PHONE.sub(lambda match: mask(match[0]), text)


def _api_error(
    channel: str, status: int, code: int | None, text: str | None
) -> OutreachError | Receipt:
    """Translate an HTTP error answer (status, Twilio code, Twilio's text) into our tree,
    or ``UNKNOWN`` when the request may have been carried out all the same."""
    known = _API_CODES.get(code) if code is not None else None
    if known is not None:
        kind, what = known
    else:
        what = _scrub(text) if text else "no details"
        kind = _API_STATUSES.get(status) or (
            _Kind.TRANSIENT
            if status >= 500
            else _Kind.PERMANENT
            if 400 <= status < 500
            else _Kind.BASE_URL
        )
    if kind is _Kind.UNKNOWN:
        return UNKNOWN
    where = f"HTTP {status}" if code in (None, status) else f"HTTP {status}, error {code}"
    if kind is _Kind.CREDENTIALS:
        return ConfigurationError(
            f"{channel}: Twilio rejected the credentials ({where}): {_CREDENTIALS_HINT}"
        )
    if kind is _Kind.BASE_URL:
        return ConfigurationError(
            f"{channel}: unexpected answer from Twilio ({where}): check OUTREACH_TWILIO_BASE_URL"
        )
    docs = f" (https://www.twilio.com/docs/errors/{code})" if code and code != status else ""
    message = f"{channel}: Twilio refused the request ({where}): {what}{docs}"
    if kind is _Kind.RATE_LIMITED:
        return RateLimited(message)
    if kind is _Kind.TRANSIENT:
        return TransientDeliveryError(message)
    return PermanentDeliveryError(message, opt_out=kind is _Kind.OPT_OUT)


def map_error(exc: BaseException, *, channel: str = "twilio") -> OutreachError | Receipt | None:
    """What a failed Twilio call means for the attempt: an error to raise, or ``UNKNOWN``.

    SDK errors map by Twilio code, then HTTP status; httpx errors by class
    (``_TRANSPORT_ERRORS``); ours (the ``RateLimited`` raised for a 429) pass through.
    ``None``: not an httpx, twilio or outreach error (a bug), to re-raise as it is.
    """
    if isinstance(exc, OutreachError):
        return exc
    if isinstance(exc, TwilioRestException):
        status = _int_or_none(exc.status) or 500  # unknown status: assume Twilio's side
        return _api_error(channel, status, _int_or_none(exc.code), str(exc.msg))
    if isinstance(exc, TwilioServiceException):
        text = str(exc.detail or exc.title or "")
        status = _int_or_none(exc.status) or 500
        return _api_error(channel, status, _int_or_none(exc.code), text)
    if isinstance(exc, httpx.HTTPStatusError):
        return _api_error(channel, exc.response.status_code, None, None)
    for cls in type(exc).__mro__:
        kind = _TRANSPORT_ERRORS.get(cls)
        if kind is None:
            continue
        if kind is _Kind.UNKNOWN:
            return UNKNOWN
        detail = f"{type(exc).__name__}: {_scrub(str(exc)) or 'no details'}"
        if kind is _Kind.BASE_URL:
            return ConfigurationError(
                f"{channel}: cannot reach Twilio ({detail}): check OUTREACH_TWILIO_BASE_URL"
            )
        return TransientDeliveryError(f"{channel}: cannot reach Twilio ({detail})")
    return None


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def _retry_hint(value: str | None) -> tuple[timedelta | None, datetime | None]:
    """``Retry-After`` as a delay (seconds) or an instant (HTTP date); ``None`` if absent."""
    if not value:
        return None, None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value)), None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None, None
    return None, when if when.tzinfo else when.replace(tzinfo=UTC)


def _rate_limited(channel: str, response: httpx.Response) -> RateLimited:
    code = None
    try:
        body = response.json()
        if isinstance(body, dict):
            code = _int_or_none(body.get("code"))
    except (ValueError, UnicodeDecodeError):
        pass
    retry_after, retry_at = _retry_hint(response.headers.get("Retry-After"))
    where = "HTTP 429" if code in (None, 429) else f"HTTP 429, error {code}"
    return RateLimited(
        f"{channel}: Twilio asked us to slow down ({where}: too many concurrent API requests)",
        retry_after=retry_after,
        retry_at=retry_at,
    )


# -- HTTP ------------------------------------------------------------------------------------


class _PoolHttpClient(AsyncHttpClient):  # type: ignore[misc, unused-ignore]
    """The SDK's async HTTP interface over :class:`HttpPool`.

    Unlike the SDK's own ``AsyncTwilioHttpClient`` it formats no log lines per request, and a
    429 becomes :class:`RateLimited` here, where the ``Retry-After`` header is still at hand.
    """

    def __init__(self, pool: Pool, channel: str) -> None:
        super().__init__(_log, True, None)
        self._pool = pool
        self._channel = channel

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        """Send one SDK request; the pool's timeouts apply and redirects are never followed."""
        if params:
            uri = str(httpx.URL(uri).copy_merge_params(params))  # type: ignore[arg-type]
        response = await self._pool.request(method, uri, headers=headers, data=data, auth=auth)
        if response.status_code == 429:
            raise _rate_limited(self._channel, response)
        return TwilioResponse(response.status_code, response.text, response.headers)


# -- adapters --------------------------------------------------------------------------------


class TwilioOptions(TypedDict, total=False):
    """The keyword arguments both Twilio adapters take; each left out comes from settings."""

    account_sid: str | None
    auth_token: str | SecretStr | None
    from_: str | None
    base_url: str | None
    rate: float | None
    """Sends (SMS: segments) per second per sender, read by the runner; ``None``: no pacing.
    Default 1."""
    max_in_flight: int | None
    """Concurrent API requests the runner allows (default: 100 for SMS, 20 for calls)."""
    public_url: str | None
    settings: Settings | None
    transport: httpx.AsyncBaseTransport | None
    http: Backend
    name: str | None


class _Twilio(Channel):
    """Credentials, the pool, the SDK client and the callback URLs both adapters share."""

    _default_name: str
    _default_max_in_flight: int

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | SecretStr | None = None,
        from_: str | None = None,
        base_url: str | None = None,
        rate: float | None = 1.0,
        max_in_flight: int | None = None,
        public_url: str | None = None,
        settings: Settings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http: Backend = "aiohttp",
        name: str | None = None,
    ) -> None:
        kind = type(self).__name__
        settings = adapter_settings(kind, settings)
        self._settings = settings
        sid = account_sid or settings.twilio_account_sid
        token = auth_token if auth_token is not None else settings.twilio_auth_token
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not sid:
            raise ConfigurationError(
                f"{kind}: no Twilio account SID: "
                "set OUTREACH_TWILIO_ACCOUNT_SID or pass account_sid="
            )
        if not secret:
            raise ConfigurationError(
                f"{kind}: no Twilio auth token: set OUTREACH_TWILIO_AUTH_TOKEN or pass auth_token="
            )
        base = check_base_url(
            kind, base_url or settings.twilio_base_url, "OUTREACH_TWILIO_BASE_URL"
        )
        in_flight = self._default_max_in_flight if max_in_flight is None else max_in_flight
        check_pacing(kind, rate, in_flight)
        self.name = name or self._default_name
        self.rate = rate
        self.max_in_flight = in_flight
        self.account_sid = sid
        self.base_url = base
        self.from_ = from_
        self._urls = PublicUrls(public_url or settings.public_url)
        self._pool = make_pool(in_flight, backend=http, transport=transport)
        self._client: Any = TwilioClient(
            sid, secret, http_client=_PoolHttpClient(self._pool, self.name)
        )
        # base_url is the only place the host comes from: TWILIO_EDGE / TWILIO_REGION in the
        # environment would otherwise rewrite it (regional edges go in base_url instead).
        self._client.edge = None
        self._client.region = None
        self._client.api.base_url = base

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, account_sid={self.account_sid!r})"

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._pool.aclose()

    def _fail(self, exc: Exception) -> Receipt:
        """Return ``UNKNOWN`` or raise the mapped error (chained to ``exc``)."""
        outcome = map_error(exc, channel=self.name)
        if isinstance(outcome, Receipt):
            return outcome
        if outcome is None or outcome is exc:
            raise exc
        raise outcome from exc


# Twilio's message and call statuses on our scale, for API answers and status callbacks alike.
MESSAGE_STATUS: Final[Mapping[str, AttemptStatus]] = {
    "accepted": AttemptStatus.QUEUED,
    "scheduled": AttemptStatus.QUEUED,
    "queued": AttemptStatus.QUEUED,
    "sending": AttemptStatus.QUEUED,
    "sent": AttemptStatus.SENT,
    "partially_delivered": AttemptStatus.SENT,
    "delivered": AttemptStatus.DELIVERED,
    "read": AttemptStatus.ENGAGED,
    "undelivered": AttemptStatus.UNDELIVERED,
    "failed": AttemptStatus.FAILED,
    "canceled": AttemptStatus.FAILED,
}

CALL_STATUS: Final[Mapping[str, AttemptStatus]] = {
    "queued": AttemptStatus.QUEUED,
    "initiated": AttemptStatus.QUEUED,
    "ringing": AttemptStatus.SENT,
    "in-progress": AttemptStatus.ENGAGED,
    "completed": AttemptStatus.ENGAGED,
    "busy": AttemptStatus.UNDELIVERED,
    "no-answer": AttemptStatus.UNDELIVERED,
    "failed": AttemptStatus.FAILED,
    "canceled": AttemptStatus.FAILED,
}


def _receipt(instance: Any, statuses: Mapping[str, AttemptStatus]) -> Receipt:
    sid = getattr(instance, "sid", None)
    if not isinstance(sid, str) or not sid:
        return UNKNOWN
    status = getattr(instance, "status", None)
    sender = getattr(instance, "from_", None)  # with a messaging service, the number it chose
    return Receipt(
        provider_id=sid,
        status=statuses.get(str(status), AttemptStatus.QUEUED),
        sender=sender if isinstance(sender, str) and sender else None,
    )


def _spelled_out(cls: type[_T]) -> type[_T]:
    """Show an adapter's whole signature (its own keywords, then the shared
    :class:`TwilioOptions`) to ``help()`` and ``inspect``, which cannot read ``Unpack``."""
    init: Any = cls.__init__
    own = inspect.signature(init).parameters.values()
    shared = list(inspect.signature(_Twilio.__init__).parameters.values())[1:]  # minus self
    keywords = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
    init.__signature__ = inspect.signature(init).replace(parameters=[*keywords, *shared])
    return cls


@_spelled_out
class TwilioSMS(_Twilio):
    """Text messages through Twilio Programmable Messaging (``Messages.json``).

    Arguments left ``None`` come from ``settings`` (default ``Settings()``, i.e. ``OUTREACH_*``).
    With a messaging service, ``From`` is left out and Twilio picks the sender from its pool.
    Requests go through aiohttp (``http="httpx"`` for httpx, which respx can intercept).
    """

    medium = Medium.SMS
    _default_name = "twilio-sms"
    _default_max_in_flight = 100

    def __init__(
        self,
        *,
        messaging_service_sid: str | None = None,
        senders: Sequence[str] = (),
        **options: Unpack[TwilioOptions],
    ) -> None:
        super().__init__(**options)
        service = messaging_service_sid or self._settings.twilio_messaging_service_sid
        self.senders = _numbers("TwilioSMS", senders or self._settings.twilio_senders)
        if self.senders and service:
            raise ConfigurationError(
                "TwilioSMS: senders= and a messaging service exclude each other: the service "
                "picks the sender from its own pool"
            )
        sender = self.from_ or (self.senders[0] if self.senders else self._settings.twilio_from)
        if not service and not sender:
            raise ConfigurationError(
                "TwilioSMS: no sender: set OUTREACH_TWILIO_FROM (a Twilio number) or "
                "OUTREACH_TWILIO_MESSAGING_SERVICE_SID, or pass from_=, senders= or "
                "messaging_service_sid="
            )
        self.from_ = None if service else sender
        self.messaging_service_sid = service
        self.sender = service or sender
        self._sender: dict[str, str] = (
            {"messaging_service_sid": service} if service else {"from_": str(sender)}
        )

    async def send(self, message: Message) -> Receipt:
        """Create the message (from ``message.sender`` when it is one of ``senders``); its
        status callback carries the attempt id."""
        callback = self._urls.twilio_status(message.attempt_id)
        sender = self._sender
        if message.sender is not None and message.sender in self.senders:
            sender = {"from_": message.sender}
        try:
            instance = await self._client.messages.create_async(
                to=message.to, body=message.body, status_callback=callback, **sender
            )
        except Exception as exc:
            return self._fail(exc)
        return _receipt(instance, MESSAGE_STATUS)


def _numbers(kind: str, senders: Sequence[str]) -> tuple[str, ...]:
    """``senders`` as unique E.164 numbers; a ``ConfigurationError`` naming a bad one."""
    if isinstance(senders, str):
        raise ConfigurationError(f"{kind}: senders must be a list of numbers, not one string")
    numbers: list[str] = []
    for position, raw in enumerate(senders):
        try:
            parsed = phonenumbers.parse(raw, None)
        except (phonenumbers.NumberParseException, TypeError):
            parsed = None
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            raise ConfigurationError(
                f"{kind}: senders[{position}] {raw!r} is not a valid E.164 number (e.g. "
                "'+16175550100')"
            )
        number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if number in numbers:
            raise ConfigurationError(f"{kind}: senders[{position}] {raw!r} is listed twice")
        numbers.append(number)
    return tuple(numbers)


SAY_VOICES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "en-US": "Polly.Joanna",
        "en-GB": "Polly.Amy",
        "en-AU": "Polly.Nicole",
        "en-IN": "Polly.Raveena",
        "fr-FR": "Polly.Lea",
        "fr-CA": "Polly.Chantal",
        "es-ES": "Polly.Lucia",
        "es-MX": "Polly.Mia",
        "es-US": "Polly.Penelope",
        "de-DE": "Polly.Vicki",
        "pt-BR": "Polly.Camila",
        "pt-PT": "Polly.Ines",
        "it-IT": "Polly.Bianca",
    }
)
"""The ``<Say voice=...>`` for each ``language=`` a call is spoken in (Amazon Polly voices
Twilio offers). Twilio's default voice does not speak all of these languages, and a voice
paired with a language it does not speak fails the ``<Say>``."""

_POLLY_LANGUAGE: Final[Mapping[str, str]] = {
    **{voice.removeprefix("Polly."): language for language, voice in SAY_VOICES.items()},
    **dict.fromkeys(("Matthew", "Joey", "Justin", "Kendra", "Kimberly", "Salli", "Ivy", "Kevin"),
                    "en-US"),
    "Brian": "en-GB", "Emma": "en-GB", "Russell": "en-AU", "Olivia": "en-AU",
    "Celine": "fr-FR", "Mathieu": "fr-FR", "Gabrielle": "fr-CA",
    "Conchita": "es-ES", "Enrique": "es-ES", "Lupe": "es-US", "Miguel": "es-US",
    "Hans": "de-DE", "Marlene": "de-DE", "Ricardo": "pt-BR", "Vitoria": "pt-BR",
    "Cristiano": "pt-PT", "Carla": "it-IT", "Giorgio": "it-IT",
}  # fmt: skip
"""The language of the Polly voices we know of, to refuse a voice paired with another."""


def voice_language(voice: str) -> str | None:
    """The language a Twilio ``<Say>`` voice speaks, when known: ``"Polly.Mia"`` → ``"es-MX"``,
    ``"Google.fr-CA-Standard-A"`` → ``"fr-CA"``, ``"Polly.Lea-Neural"`` → ``"fr-FR"``."""
    provider, _, name = voice.partition(".")
    if provider == "Google":
        language, _, region = name.partition("-")
        return f"{language}-{region.partition('-')[0]}"
    if provider == "Polly":
        return _POLLY_LANGUAGE.get(name.partition("-")[0])
    return None


def say_voices(overrides: Mapping[str, str] | None) -> Mapping[str, str]:
    """:data:`SAY_VOICES` with ``overrides`` (language → voice) applied, each checked: a
    language calls are spoken in, and a voice not known to speak another one."""
    table = dict(SAY_VOICES)
    for language, voice in (overrides or {}).items():
        if language not in SAY_VOICES:
            raise ConfigurationError(
                f"TwilioVoice voices: {language!r} is not a language calls are spoken in "
                f"(one of {', '.join(SAY_VOICES)})"
            )
        if not isinstance(voice, str) or not voice.strip():
            raise ConfigurationError(
                f"TwilioVoice voices: {language!r}: give a voice such as {SAY_VOICES[language]!r}"
            )
        spoken = voice_language(voice)
        if spoken is not None and spoken != language:
            raise ConfigurationError(
                f"TwilioVoice voices: {language!r}: {voice!r} speaks {spoken}, not {language}"
            )
        table[language] = voice
    return MappingProxyType(table)


@_spelled_out
class TwilioVoice(_Twilio):
    """Phone calls through Twilio Programmable Voice (``Calls.json``).

    Twilio fetches the call's TwiML from our ``/twilio/voice/{attempt_id}`` (the webhooks build
    it) and reports progress to ``/twilio/status``. Answering-machine detection
    (``machine_detection``: ``"DetectMessageEnd"`` by default, which waits for the beep;
    ``"Enable"`` answers sooner) lets the webhook leave a short voicemail instead of the menu.
    ``voices`` (language → voice, e.g. ``{"fr-CA": "Google.fr-CA-Standard-A"}``) overrides
    :data:`SAY_VOICES` for the calls this adapter places; the webhooks speak with ``.voices``.
    """

    medium = Medium.VOICE
    _default_name = "twilio-voice"
    _default_max_in_flight = 20

    def __init__(
        self,
        *,
        machine_detection: str = "DetectMessageEnd",
        voices: Mapping[str, str] | None = None,
        **options: Unpack[TwilioOptions],
    ) -> None:
        self.voices = say_voices(voices)
        super().__init__(**options)
        sender = self.from_ or self._settings.twilio_voice_from or self._settings.twilio_from
        if not sender:
            raise ConfigurationError(
                "TwilioVoice: no caller number: set OUTREACH_TWILIO_VOICE_FROM (or "
                "OUTREACH_TWILIO_FROM) or pass from_="
            )
        self.from_ = sender
        self.sender = sender
        self.machine_detection = machine_detection

    async def send(self, message: Message) -> Receipt:
        """Place the call; Twilio then asks our voice webhook what to say."""
        attempt = message.attempt_id
        url, callback = self._urls.twilio_voice(attempt), self._urls.twilio_status(attempt)
        try:
            instance = await self._client.calls.create_async(
                to=message.to,
                from_=self.from_,
                url=url,
                method="POST",
                status_callback=callback,
                status_callback_event=list(_CALL_EVENTS),
                status_callback_method="POST",
                machine_detection=self.machine_detection,
            )
        except Exception as exc:
            return self._fail(exc)
        return _receipt(instance, CALL_STATUS)

    async def cancel(self, provider_id: str) -> None:
        """Hang up a call (queued, ringing or in progress): the customer already acknowledged."""
        try:
            await self._client.calls(provider_id).update_async(status="completed")
        except Exception as exc:
            if self._fail(exc) is UNKNOWN:
                raise TransientDeliveryError(
                    f"{self.name}: hanging up call {provider_id}: no answer from Twilio"
                ) from exc
