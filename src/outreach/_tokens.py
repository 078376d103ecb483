"""Signed, expiring tokens for acknowledgement and unsubscribe links.

A token is ``<payload>.<mac>``: the payload is compact JSON with one-letter keys, the MAC is
HMAC-SHA256 over the encoded payload, both base64url without padding. Tokens travel in SMS
and emails, so they are kept short; they are signed, not encrypted (the payload holds ids
only, nothing personal).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from outreach.exceptions import ConfigurationError, ExpiredToken, InvalidToken

# The MAC is truncated to 128 bits: still far beyond guessing (2**128 forgery attempts) and
# it saves 21 characters in every SMS link.
_MAC_BYTES = 16
# Domain separation, so a MAC made with the same key for another purpose cannot pass here.
_CONTEXT = b"outreach-token-v1."
_MAX_LENGTH = 2048
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Built once: ``json.dumps`` with options builds a new encoder per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token vouches for."""

    purpose: str
    """``"ack"`` or ``"unsubscribe"``; ``verify`` rejects a token used for another purpose."""
    notification_id: str
    attempt_id: str | None
    choice: str | None
    expires_at: datetime
    """Aware UTC; stored to the second (sub-second parts are dropped when signing)."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and verifies :class:`TokenClaims` with one secret key."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if not key:
            raise ConfigurationError(
                "the token secret is empty; set OUTREACH_SECRET_KEY to a long random value"
            )
        self._keyed = hmac.new(key, _CONTEXT, hashlib.sha256)  # copied per token: keyed once

    def __repr__(self) -> str:
        return "TokenSigner(secret=<hidden>)"

    def _mac(self, payload: str) -> str:
        mac = self._keyed.copy()
        mac.update(payload.encode("ascii"))
        return _b64encode(mac.digest()[:_MAC_BYTES])

    def sign(self, claims: TokenClaims) -> str:
        """Return the token for ``claims`` (expiry rounded down to the second)."""
        if claims.expires_at.tzinfo is None or claims.expires_at.utcoffset() is None:
            raise ValueError("expires_at must be timezone-aware")
        body: dict[str, Any] = {
            "p": claims.purpose,
            "n": claims.notification_id,
            "e": math.floor(claims.expires_at.timestamp()),
        }
        if claims.attempt_id is not None:
            body["a"] = claims.attempt_id
        if claims.choice is not None:
            body["c"] = claims.choice
        payload = _b64encode(_COMPACT.encode(body).encode("utf-8"))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, *, now: datetime, purpose: str) -> TokenClaims:
        """Return the claims of a genuine, unexpired token made for ``purpose``.

        Raises :class:`InvalidToken` for a malformed, forged or wrong-purpose token and
        :class:`ExpiredToken` once ``now >= expires_at``.
        """
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        if not isinstance(token, str) or len(token) > _MAX_LENGTH or not _SHAPE.fullmatch(token):
            raise InvalidToken("malformed token")
        payload, mac = token.split(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            raise InvalidToken(
                "token signature does not match (altered, or signed with another key)"
            )
        claims = _decode_claims(payload)
        if claims.purpose != purpose:
            raise InvalidToken(f"token is for {claims.purpose!r}, not {purpose!r}")
        if now >= claims.expires_at:
            raise ExpiredToken(f"token expired at {claims.expires_at.isoformat()}")
        return claims


def _decode_claims(payload: str) -> TokenClaims:
    """Parse a payload whose MAC already checked out."""
    try:
        body = json.loads(_b64decode(payload).decode("utf-8"))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("malformed token payload") from exc
    if not isinstance(body, dict):
        raise InvalidToken("malformed token payload")
    purpose, notification_id, expiry = body.get("p"), body.get("n"), body.get("e")
    attempt_id, choice = body.get("a"), body.get("c")
    if (
        not isinstance(purpose, str)
        or not isinstance(notification_id, str)
        or not isinstance(expiry, int)
        or isinstance(expiry, bool)
        or not isinstance(attempt_id, str | None)
        or not isinstance(choice, str | None)
    ):
        raise InvalidToken("malformed token payload")
    try:
        expires_at = datetime.fromtimestamp(expiry, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidToken("malformed token expiry") from exc
    return TokenClaims(
        purpose=purpose,
        notification_id=notification_id,
        attempt_id=attempt_id,
        choice=choice,
        expires_at=expires_at,
    )
