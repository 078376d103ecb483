"""Plumbing every route shares: size-limited bodies, form parsing, the signed URL, signatures.

A request is read, parsed and verified completely before anything is looked up or changed,
so a rejected request (4xx) leaves the store exactly as it was.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlparse

from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import (  # type: ignore[import-untyped, unused-ignore]
    EventWebhook,
    EventWebhookHeader,
)
from starlette.requests import Request
from starlette.types import Scope
from twilio.request_validator import (  # type: ignore[import-untyped, unused-ignore]
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    add_port,
    compare,
    remove_port,
)

from outreach._client import AsyncClient
from outreach._inbound import Inbound
from outreach._settings import Settings
from outreach._urls import PublicUrls
from outreach.exceptions import ConfigurationError

log = logging.getLogger("outreach.webhooks")

FORM_LIMIT = 64 * 1024
"""Largest form body accepted (Twilio posts a few KiB at most; an SMS body is <= 1600 chars)."""
EVENTS_LIMIT = 1024 * 1024
"""Largest SendGrid event batch accepted."""
_MAX_FIELDS = 500
_CLOCK_SKEW = timedelta(minutes=10)
"""How far in the future a signature timestamp may be (clocks disagree by minutes, not hours)."""
_FORM = "application/x-www-form-urlencoded"


class Rejected(Exception):
    """A request refused before anything changed; answered as a plain-text 4xx."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Rejected(400, "invalid Content-Length")
        if int(declared) > limit:
            raise Rejected(413, f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, f"request body over {limit} bytes")
    return bytes(body)


class Form:
    """URL-encoded fields in order; a repeated name keeps every value.

    ``getlist`` is what ``twilio.request_validator.RequestValidator`` looks for, so repeated
    parameters are signed the way Twilio signs them.
    """

    __slots__ = ("_values",)

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def get(self, name: str, default: str = "") -> str:
        """The first value of ``name``, or ``default``."""
        values = self._values.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``."""
        return list(self._values.get(name, ()))

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return sum(map(len, self._values.values()))

    def __repr__(self) -> str:
        return f"Form({list(self)!r})"


def parse_form(body: bytes, content_type: str | None) -> Form:
    """Parse an ``application/x-www-form-urlencoded`` body strictly (400 when malformed)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    if media != _FORM:
        raise Rejected(415, f"expected {_FORM}")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise Rejected(400, f"malformed form body: {type(exc).__name__}") from None
    return Form(pairs)


def route_path(scope: Scope) -> str:
    """The raw path and query as this app routes them: what follows the public base URL.

    Signatures cover the URL byte for byte, so this is built from ``raw_path`` (as received,
    percent-encoding intact) and the raw query string, less any mount prefix (``root_path``),
    which the public base URL already holds.
    """
    raw = scope.get("raw_path")
    path: bytes = raw if raw else quote(scope["path"], safe="/:@!$&'()*+,;=~").encode("ascii")
    root: str = scope.get("root_path", "")
    if root:
        for prefix in (root.encode("utf-8"), quote(root, safe="/").encode("ascii")):
            rest = path[len(prefix) :]
            if path.startswith(prefix) and (not rest or rest.startswith(b"/")):
                path = rest
                break
    text = path.decode("latin-1") or "/"
    query: bytes = scope.get("query_string", b"")
    return f"{text}?{query.decode('latin-1')}" if query else text


def _signed_urls(url: str) -> Iterator[str]:
    """The URLs Twilio may have signed for ``url``, as the SDK's ``validate`` tries them
    (without the port and with it), the one as given first: the other is only worked out
    when the first does not match."""
    parsed = urlparse(url)
    first, second = (add_port, remove_port) if parsed.port else (remove_port, add_port)
    yield first(parsed)
    yield second(parsed)


class TwilioVerifier:
    """Checks ``X-Twilio-Signature`` against every configured account's auth token."""

    def __init__(self, tokens: Sequence[str], urls: PublicUrls) -> None:
        self._validators = [RequestValidator(token) for token in tokens]
        self._urls = urls

    def check(self, request: Request, form: Form) -> None:
        """Raise 403 unless one of the accounts signed exactly this URL and these fields."""
        signature = request.headers.get("x-twilio-signature")
        if not signature:
            raise Rejected(403, "missing X-Twilio-Signature")
        url = self._urls.for_request(route_path(request.scope))
        for validator in self._validators:
            try:
                if any(
                    compare(validator.compute_signature(signed, form), signature)
                    for signed in _signed_urls(url)
                ):
                    return
            except Exception:  # a validator bug or odd input is a failed check, never a 500
                log.debug("Twilio signature check raised", exc_info=True)
        if request.headers.get(SIGNATURE_SETTINGS_HEADER):
            log.warning(
                "a Twilio request is signed with a shared key (%s), which is not supported: "
                "sign webhooks with the account auth token",
                SIGNATURE_SETTINGS_HEADER,
            )
        log.warning("rejected a request with a bad Twilio signature for %s", url)
        raise Rejected(403, "invalid X-Twilio-Signature")


class SendGridVerifier:
    """Checks SendGrid's signed Event Webhook: ECDSA P-256 over timestamp + exact raw body."""

    def __init__(self, public_key: str, max_age: timedelta, client: AsyncClient) -> None:
        try:
            webhook = EventWebhook(public_key.strip())
        except Exception as exc:
            raise ConfigurationError(
                "OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key "
                f"(expected base64 DER, as shown in SendGrid's Mail Settings): {exc}"
            ) from None
        key: Any = webhook.public_key
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ConfigurationError(
                "OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA P-256 key"
            )
        self._webhook = webhook
        self._max_age = max_age
        self._client = client

    def check(self, request: Request, body: bytes) -> None:
        """Raise 403 unless the body is signed and fresh, 400 when it is not UTF-8 at all."""
        signature = request.headers.get(EventWebhookHeader.SIGNATURE)
        timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP)
        if not signature or not timestamp:
            raise Rejected(403, "missing SendGrid signature headers")
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise Rejected(403, "invalid SendGrid signature timestamp")
        now = self._client.clock.now().timestamp()
        age = now - int(timestamp)
        oldest = self._max_age.total_seconds()
        if age > oldest or -age > min(oldest, _CLOCK_SKEW.total_seconds()):
            log.warning("rejected a SendGrid batch signed %.0f s from now", -age)
            raise Rejected(403, "SendGrid signature timestamp outside the accepted window")
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(400, "request body is not UTF-8") from None
        try:
            valid = bool(self._webhook.verify_signature(payload, signature, timestamp))
        except (binascii.Error, ValueError, TypeError):  # the helper raises on bad base64
            valid = False
        if not valid:
            log.warning("rejected a SendGrid batch with a bad signature")
            raise Rejected(403, "invalid SendGrid signature")


SIGHTED: ContextVar[list[str]] = ContextVar("outreach_webhook_sightings")
"""Event keys first seen by the request being handled."""


@dataclass(frozen=True, slots=True)
class Ctx:
    """What the routes share: the client (and its ``inbound`` side), the settings and the
    configured verifiers.

    A verifier is None only in insecure development mode (signatures not checked).
    """

    client: AsyncClient
    inbound: Inbound
    settings: Settings
    urls: PublicUrls
    twilio: TwilioVerifier | None
    sendgrid: SendGridVerifier | None

    async def first_sighting(self, key: str) -> bool:
        """True the first time a provider event is seen. Remembered for the request: if
        handling it then fails, the key is forgotten so the provider's retry is applied."""
        fresh = await self.inbound.first_sighting(key)
        if fresh:
            SIGHTED.get().append(key)
        return fresh

    async def twilio_form(self, request: Request) -> Form:
        """Read, parse and verify a Twilio webhook post."""
        form = parse_form(await read_body(request, FORM_LIMIT), request.headers.get("content-type"))
        if self.twilio is not None:
            self.twilio.check(request, form)
        return form
