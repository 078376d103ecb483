"""SendGrid email: ``POST /v3/mail/send`` over the shared sharded httpx pool.

The JSON body is built by SendGrid's own ``Mail`` helper, so it is the shape SendGrid documents;
``custom_args`` carry our notification and attempt ids (strings, under a prefix, because
SendGrid merges them into every event webhook item as top-level keys beside ``email``,
``event``, ``type`` and ``status``). Failures map onto the error tree at this edge, from two
tables: one by HTTP status, one by httpx exception class. A request that may have reached
SendGrid before the connection failed is reported ``unknown``, never raised as retryable: the
event webhook reconciles it, and nothing is resent blindly.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any, Final

import httpx
from pydantic import SecretStr

# sendgrid ships no type hints; with a `sendgrid.*` mypy override the ignore is simply unused.
from sendgrid.helpers.mail import (
    CustomArg,
    Header,
    Mail,
    SendGridException,
)

from outreach._models import AttemptStatus, Medium
from outreach._redact import mask
from outreach._settings import Settings
from outreach.channels._base import Channel, Message, Receipt
from outreach.channels._http import Backend, make_pool
from outreach.channels._options import adapter_settings, check_base_url, check_pacing
from outreach.exceptions import (
    ConfigurationError,
    OutreachError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)

__all__ = ["SendGridEmail", "error_for_exception", "error_for_response"]

_log = logging.getLogger(__name__)

_KEY_SETTING: Final = "OUTREACH_SENDGRID_API_KEY"
_FROM_SETTING: Final = "OUTREACH_SENDGRID_FROM"
_URL_SETTING: Final = "OUTREACH_SENDGRID_BASE_URL"

UNKNOWN_RECEIPT: Final = Receipt(provider_id=None, status=AttemptStatus.UNKNOWN)
"""What a send returns when the request may or may not have reached SendGrid."""


class SendGridEmail(Channel):
    """Sends email through SendGrid's v3 Mail Send API.

    Every argument left as ``None`` comes from ``settings`` (or, without it, from ``Settings()``,
    i.e. the ``OUTREACH_SENDGRID_*`` environment variables). ``rate`` (sends per second; ``None``
    turns pacing off) and ``max_in_flight`` are read by the runner, which paces; the adapter only
    sizes its connection pool to ``max_in_flight``. ``list_unsubscribe`` adds the RFC 8058
    one-click headers to messages that carry an ``unsubscribe_url`` (for notices that are not
    purely transactional). ``transport`` replaces the network (tests, benchmarks);
    Requests go through aiohttp (``http="httpx"`` for httpx, which respx can intercept).
    """

    medium = Medium.EMAIL

    def __init__(
        self,
        *,
        api_key: str | SecretStr | None = None,
        from_email: str | None = None,
        base_url: str | None = None,
        rate: float | None = None,
        max_in_flight: int = 100,
        list_unsubscribe: bool = False,
        custom_args_prefix: str = "outreach_",
        settings: Settings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http: Backend = "aiohttp",
        name: str = "sendgrid",
    ) -> None:
        if api_key is None or from_email is None or base_url is None:
            settings = adapter_settings("SendGridEmail", settings)
            api_key = api_key if api_key is not None else settings.sendgrid_api_key
            from_email = from_email if from_email is not None else settings.sendgrid_from
            base_url = base_url if base_url is not None else settings.sendgrid_base_url
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ConfigurationError(f"SendGridEmail needs an API key: set {_KEY_SETTING}")
        if not from_email or "@" not in parseaddr(from_email)[1]:
            raise ConfigurationError(
                "SendGridEmail needs a sender address such as 'Cape Air <noreply@example.com>': "
                f"set {_FROM_SETTING}"
            )
        check_pacing("SendGridEmail", rate, max_in_flight)

        self.name = name
        self.rate = rate
        self.max_in_flight = max_in_flight
        self.list_unsubscribe = list_unsubscribe
        self.from_email = from_email
        self._sender = parseaddr(from_email)[1]
        self.sender = self._sender
        self.base_url = check_base_url("SendGridEmail", base_url, _URL_SETTING)
        self._url = f"{self.base_url}/v3/mail/send"
        self._headers = {"Authorization": f"Bearer {key}"}
        self._notification_arg = f"{custom_args_prefix}notification_id"
        self._attempt_arg = f"{custom_args_prefix}attempt_id"
        self._pool = make_pool(max_in_flight, backend=http, transport=transport)

    def __repr__(self) -> str:
        return f"SendGridEmail(name={self.name!r}, base_url={self.base_url!r})"

    def build_payload(self, message: Message) -> dict[str, Any]:
        """The Mail Send JSON for ``message``, built with SendGrid's ``Mail`` helper.

        The ack and option links are already in the rendered bodies. An empty HTML part is
        left out (SendGrid rejects empty content values).
        """
        mail = Mail(
            from_email=self.from_email,
            to_emails=message.to,
            subject=message.subject,
            plain_text_content=message.body,
            html_content=message.html or None,
        )
        mail.add_custom_arg(CustomArg(self._notification_arg, str(message.notification_id)))
        mail.add_custom_arg(CustomArg(self._attempt_arg, str(message.attempt_id)))
        if self.list_unsubscribe and message.unsubscribe_url:
            mail.add_header(Header("List-Unsubscribe", f"<{message.unsubscribe_url}>"))
            mail.add_header(Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        payload: dict[str, Any] = mail.get()
        return payload

    async def send(self, message: Message) -> Receipt:
        """Queue one email; 2xx gives a ``queued`` receipt with SendGrid's ``X-Message-Id``.

        ``X-Message-Id`` names the request; each event's ``sg_message_id`` starts with it.
        """
        try:
            payload = self.build_payload(message)
        except SendGridException as exc:  # the helper refuses a body that holds an API key
            raise PermanentDeliveryError(f"SendGrid helper refused the email: {exc!r}") from exc
        _log.debug("SendGrid send attempt=%s to=%s", message.attempt_id, mask(message.to))
        try:
            response = await self._pool.request(
                "POST", self._url, headers=self._headers, json=payload
            )
        except _HTTPX_ERRORS as exc:
            outcome = error_for_exception(exc)
            if isinstance(outcome, Receipt):
                return _maybe_sent_warning(message, type(exc).__name__, outcome)
            raise outcome from exc
        if response.is_success:
            return Receipt(
                provider_id=response.headers.get("X-Message-Id"),
                status=AttemptStatus.QUEUED,
                sender=self._sender,
            )
        answer = outcome_for_response(response)
        if isinstance(answer, Receipt):
            return _maybe_sent_warning(message, f"HTTP {response.status_code}", answer)
        raise answer

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._pool.aclose()


def _maybe_sent_warning(message: Message, what: str, receipt: Receipt) -> Receipt:
    _log.warning(
        "SendGrid send attempt=%s: %s after the request may have reached SendGrid; "
        "recorded unknown for the event webhook to reconcile",
        message.attempt_id,
        what,
    )
    return receipt


# -- responses ----------------------------------------------------------------------------------

_EMAIL = re.compile(r"[^\s@<>\"'(),;:]+@[^\s@<>\"'(),;:]+")
_API_KEY = re.compile(r"SG\.[\w-]+\.[\w-]+")


def _detail(response: httpx.Response) -> str:
    """SendGrid's ``errors[].message`` (``field``) list, with addresses and keys masked."""
    try:
        body = response.json()
    except ValueError:  # not JSON (a proxy's HTML page): the reason phrase will do
        return response.reason_phrase
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return response.reason_phrase
    parts = []
    for error in errors[:5]:
        if not isinstance(error, dict):
            continue
        text = str(error.get("message") or "")[:300]
        if field := error.get("field"):
            text += f" (field: {field})"
        parts.append(text)
    text = "; ".join(parts) or response.reason_phrase
    text = _API_KEY.sub("SG.***", text)
    return _EMAIL.sub(lambda m: mask(m.group()), text)


def _retry_hint(headers: httpx.Headers, *, reset: bool) -> tuple[timedelta | None, datetime | None]:
    """``(retry_after, retry_at)``: SendGrid's ``X-RateLimit-Reset`` is an epoch instant (used
    only when ``reset``); ``Retry-After`` is seconds or an HTTP date."""
    if reset and (value := headers.get("X-RateLimit-Reset")):
        try:
            return None, datetime.fromtimestamp(float(value), tz=UTC)
        except (ValueError, OverflowError, OSError):
            pass
    if value := headers.get("Retry-After"):
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None, None
            return None, when if when.tzinfo else when.replace(tzinfo=UTC)
        if math.isfinite(seconds) and seconds >= 0:
            return timedelta(seconds=seconds), None
    return None, None


def _permanent(text: str, response: httpx.Response) -> OutreachError:
    return PermanentDeliveryError(text)


def _transient(text: str, response: httpx.Response) -> OutreachError:
    retry_after, retry_at = _retry_hint(response.headers, reset=False)
    return TransientDeliveryError(text, retry_after=retry_after, retry_at=retry_at)


def _rate_limited(text: str, response: httpx.Response) -> OutreachError:
    retry_after, retry_at = _retry_hint(response.headers, reset=True)
    return RateLimited(text, retry_after=retry_after, retry_at=retry_at)


def _credentials(text: str, response: httpx.Response) -> OutreachError:
    return ConfigurationError(
        f"{text}; check {_KEY_SETTING} (a valid key with the Mail Send permission)"
    )


def _misdirected(text: str, response: httpx.Response) -> OutreachError:
    return ConfigurationError(f"{text}; check {_URL_SETTING}")


_BY_STATUS: Final[Mapping[int, Callable[[str, httpx.Response], OutreachError]]] = {
    401: _credentials,  # bad, expired or revoked key
    403: _credentials,  # key without the Mail Send permission, or an account block
    408: _transient,  # the server gave up waiting for our request: it was not processed
    429: _rate_limited,
}
_BY_CLASS: Final[Mapping[int, Callable[[str, httpx.Response], OutreachError]]] = {
    3: _misdirected,  # redirects are not followed: the base URL is wrong
    4: _permanent,  # 400, 406, 413, 415, 451 ...: this request will never be accepted
    5: _transient,  # 500, 503 ...: SendGrid's own failure, or not taken on (providers.md §7)
}
_MAYBE_SENT_STATUSES: Final = frozenset({502, 504})
"""Answers from a gateway that forwarded the request and then lost SendGrid's answer (502: a
broken one, 504: none in time): the email may be queued, as after a read timeout. A 503 is
said before a request is taken on (SendGrid's documented 503, or a load balancer without a
healthy backend), so it stays transient; neither 502 nor 504 is one SendGrid documents as its
own answer."""


def outcome_for_response(response: httpx.Response) -> OutreachError | Receipt:
    """A non-2xx answer: ``UNKNOWN_RECEIPT`` when SendGrid may have acted, else the error."""
    if response.status_code in _MAYBE_SENT_STATUSES:
        return UNKNOWN_RECEIPT
    return error_for_response(response)


def error_for_response(response: httpx.Response) -> OutreachError:
    """The error for a non-2xx answer from SendGrid, with its ``errors[]`` in the text."""
    status = response.status_code
    make = _BY_STATUS.get(status) or _BY_CLASS.get(status // 100, _permanent)
    return make(f"SendGrid answered HTTP {status}: {_detail(response)}", response)


# -- transport failures -------------------------------------------------------------------------

_HTTPX_ERRORS: Final = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict)
"""Every exception httpx defines (a test enumerates ``httpx.__all__`` to keep this true)."""


def _not_sent(exc: Exception) -> OutreachError | Receipt:
    return TransientDeliveryError(f"SendGrid not reached ({type(exc).__name__}): {exc}")


def _maybe_sent(exc: Exception) -> OutreachError | Receipt:
    return UNKNOWN_RECEIPT


def _unsendable(exc: Exception) -> OutreachError | Receipt:
    return PermanentDeliveryError(f"could not form the SendGrid request ({type(exc).__name__})")


def _bad_url(exc: Exception) -> OutreachError | Receipt:
    return ConfigurationError(f"cannot reach SendGrid ({type(exc).__name__}): check {_URL_SETTING}")


def _status(exc: Exception) -> OutreachError | Receipt:
    assert isinstance(exc, httpx.HTTPStatusError)
    return outcome_for_response(exc.response)


_BY_EXCEPTION: Final[Mapping[type[Exception], Callable[[Exception], OutreachError | Receipt]]] = {
    # Nothing reached SendGrid: safe to try again.
    httpx.ConnectError: _not_sent,
    httpx.ConnectTimeout: _not_sent,
    httpx.PoolTimeout: _not_sent,
    httpx.ProxyError: _not_sent,
    # The request may have reached SendGrid: record unknown, never resend blindly.
    httpx.ReadTimeout: _maybe_sent,
    httpx.WriteTimeout: _maybe_sent,
    httpx.ReadError: _maybe_sent,
    httpx.WriteError: _maybe_sent,
    httpx.CloseError: _maybe_sent,
    httpx.RemoteProtocolError: _maybe_sent,
    httpx.DecodingError: _maybe_sent,
    httpx.HTTPError: _maybe_sent,  # any other failure mid-request: assume the worst
    # The request could not be formed: the same request will fail the same way.
    httpx.LocalProtocolError: _unsendable,
    httpx.StreamError: _unsendable,
    httpx.CookieConflict: _unsendable,
    # The base URL is wrong.
    httpx.InvalidURL: _bad_url,
    httpx.UnsupportedProtocol: _bad_url,
    httpx.TooManyRedirects: _bad_url,
    httpx.HTTPStatusError: _status,
}


def error_for_exception(exc: Exception) -> OutreachError | Receipt:
    """Map an httpx exception raised by a send: an error to raise, or an ``unknown`` receipt.

    The most specific class in ``exc``'s MRO that the table names decides.
    """
    for cls in type(exc).__mro__:
        if (make := _BY_EXCEPTION.get(cls)) is not None:
            return make(exc)
    return UNKNOWN_RECEIPT
