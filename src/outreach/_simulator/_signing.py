"""Request signing exactly as the providers do it.

Twilio: ``X-Twilio-Signature`` is base64(HMAC-SHA1(auth token, URL + sorted name+value
pairs)), computed here by Twilio's own ``RequestValidator``. SendGrid's signed Event Webhook:
base64(DER(ECDSA-P256-SHA256(timestamp + raw body))) with a key pair made per simulator; the
public half is what SendGrid's console shows (base64 DER SubjectPublicKeyInfo).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import (  # type: ignore[import-untyped, unused-ignore]
    RequestValidator,
)

__all__ = [
    "SENDGRID_SIGNATURE",
    "SENDGRID_TIMESTAMP",
    "TWILIO_SIGNATURE",
    "SendGridSigner",
    "twilio_signature",
]

TWILIO_SIGNATURE = "X-Twilio-Signature"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` of a request to ``url`` with form ``params``.

    For a GET the parameters are in ``url`` already: pass ``{}``.
    """
    signature: str = RequestValidator(auth_token).compute_signature(url, dict(params))
    return signature


class SendGridSigner:
    """An ECDSA P-256 key pair that signs Event Webhook posts."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode("ascii")
        """Base64 DER SubjectPublicKeyInfo, as SendGrid shows it (no PEM armour)."""

    def sign(self, timestamp: str, body: bytes) -> str:
        """The signature header for ``body`` posted with the ``timestamp`` header."""
        der = self._key.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(der).decode("ascii")
