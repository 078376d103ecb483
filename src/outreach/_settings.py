"""Settings read from ``OUTREACH_*`` environment variables; keyword arguments win.

The providers' own variables (``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``,
``SENDGRID_API_KEY``, as their SDKs read them) are the fall-back when the ``OUTREACH_*`` name is
unset. Every invalid value is a ``ConfigurationError`` naming the variable it came from.
"""

from __future__ import annotations

import json
import math
import os
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from outreach._durations import Duration
from outreach.exceptions import ConfigurationError

SHORT_SECRET_KEY = 32
"""Bytes below which a secret key is accepted with a warning (Django's deploy check: 50 chars)."""

DEFAULT_HELP_TEXT = (
    "Reply OK to confirm you got our message, or the number of an option to choose it. "
    "Reply STOP to stop these messages."
)


def _split_words(value: Any) -> Any:
    """Accept ``"OK, ACK,GOT IT"`` (or a JSON list) from the environment as a list of words."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [word.strip() for word in text.split(",") if word.strip()]


def _off_is_none(value: Any) -> Any:
    """``"off"`` or ``"none"`` (any case) from the environment turns pacing off."""
    if isinstance(value, str) and value.strip().lower() in ("off", "none", ""):
        return None
    return value


Rate = Annotated[float | None, BeforeValidator(_off_is_none)]
"""Sends per second per sender; ``None`` (``off`` in the environment): no pacing."""

FALLBACKS = {
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "sendgrid_api_key": "SENDGRID_API_KEY",
}
"""Settings that fall back to the provider SDK's own environment variable."""

_PREFIX = "OUTREACH_"


def _with_fallback(name: str) -> AliasChoices:
    return AliasChoices(_PREFIX + name.upper(), FALLBACKS[name])


def env_name(field: str) -> str:
    """The environment variable a setting is read from (the one set, when it has two)."""
    if field.upper().startswith(_PREFIX) or field.upper() in FALLBACKS.values():
        return field.upper()  # an alias already
    own = _PREFIX + field.upper()
    fallback = FALLBACKS.get(field)
    if fallback is not None and own not in os.environ and fallback in os.environ:
        return fallback
    return own


def checked_secret_key(value: SecretStr | None) -> str | None:
    """The key's text (None when unset); a key set but empty or blank is refused.

    docker-compose passes an unset ``${OUTREACH_SECRET_KEY}`` as an empty string: taking that
    as "no key" would sign each process's links with its own throw-away key, all dead.
    """
    if value is None:
        return None
    text = value.get_secret_value()
    if not text.strip():
        raise ConfigurationError(
            "OUTREACH_SECRET_KEY is set but empty: set it to a long random value (e.g. the "
            "output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), the "
            "same in every process, or leave it unset for a throw-away key (scripts, tests)"
        )
    return text


class Settings(BaseSettings):
    """Configuration for the client, the CLI, the channels and the webhooks.

    Every field can come from ``OUTREACH_<FIELD>`` (e.g. ``OUTREACH_TWILIO_FROM``); the
    Twilio credentials and the SendGrid key also from the SDKs' own ``TWILIO_ACCOUNT_SID``,
    ``TWILIO_AUTH_TOKEN`` and ``SENDGRID_API_KEY`` when the ``OUTREACH_*`` name is unset.
    Arguments passed to the constructor take precedence. An invalid value raises
    ``ConfigurationError`` naming its variable. No ``.env`` file is read unless a subclass or
    the caller asks for one (``Settings(_env_file=".env")``).
    """

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", populate_by_name=True)

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{env_name(str(error['loc'][0]))}: {error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors(include_input=False)
            )
            raise ConfigurationError(f"invalid settings: {problems}") from None

    store: str = Field(
        default="sqlite:///outreach.db",
        description="Store URL (memory://, sqlite:///path.db, postgresql://...).",
    )
    templates: str | None = Field(default=None, description="Directory of message templates.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that signs acknowledgement and unsubscribe tokens: at least 32 random "
        "bytes, the same in every process; set but empty is refused.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL where providers and customers reach the webhooks app.",
    )

    twilio_account_sid: str | None = Field(
        default=None,
        validation_alias=_with_fallback("twilio_account_sid"),
        description="Twilio account SID (else TWILIO_ACCOUNT_SID).",
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None,
        validation_alias=_with_fallback("twilio_auth_token"),
        description="Twilio auth token, for API calls and webhook signatures (else "
        "TWILIO_AUTH_TOKEN).",
    )
    twilio_from: str | None = Field(
        default=None, description="Sender number for SMS (TwilioSMS ``from_``)."
    )
    twilio_senders: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_words)] = Field(
        default=(),
        description="SMS sender numbers; a customer's concurrent notifications are texted from "
        "different ones (TwilioSMS ``senders``; comma-separated in env).",
    )
    twilio_messaging_service_sid: str | None = Field(
        default=None, description="Twilio messaging service used instead of a sender number."
    )
    twilio_voice_from: str | None = Field(
        default=None, description="Caller number for voice calls (defaults to the SMS sender)."
    )
    twilio_base_url: str = Field(
        default="https://api.twilio.com", description="Twilio REST API base URL."
    )

    sendgrid_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_with_fallback("sendgrid_api_key"),
        description="SendGrid API key (else SENDGRID_API_KEY).",
    )
    sendgrid_from: str | None = Field(
        default=None, description="Sender address for email (SendGridEmail ``from_email``)."
    )
    sendgrid_base_url: str = Field(
        default="https://api.sendgrid.com", description="SendGrid API base URL."
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="Public key (base64 DER) that verifies SendGrid event webhooks."
    )

    brand_name: str | None = Field(
        default=None, description="Who the link pages say the message is from (webhooks Brand)."
    )
    brand_contact: str | None = Field(
        default=None,
        description="Whom the expired and already-answered pages tell customers to contact.",
    )
    brand_logo_url: str | None = Field(
        default=None, description="The link pages' logo: an https:// or data:image/ URL."
    )
    twilio_sms_rate: Rate = Field(
        default=1.0, description="SMS segments per second per sender ('off': no pacing)."
    )
    twilio_sms_max_in_flight: int = Field(
        default=100, ge=1, description="Concurrent Twilio Messages API requests."
    )
    twilio_voice_rate: Rate = Field(
        default=1.0, description="Calls started per second per caller number ('off': no pacing)."
    )
    twilio_voice_max_in_flight: int = Field(
        default=20, ge=1, description="Concurrent Twilio Calls API requests."
    )
    sendgrid_rate: Rate = Field(
        default=None, description="Emails per second ('off', the default: no pacing)."
    )
    sendgrid_max_in_flight: int = Field(
        default=100, ge=1, description="Concurrent SendGrid Mail Send requests."
    )

    signature_max_age: Duration = Field(
        # SendGrid retries a batch it could not deliver for up to 24 hours, and may sign a retry
        # with the batch's first timestamp; an hour more allows for its last retry's delay and
        # clock skew. Replays within the window are harmless: events are de-duplicated on
        # sg_event_id, and those receipts are kept at least this long.
        default=timedelta(hours=25),
        description="Oldest webhook signature timestamp accepted (e.g. '25h'); SendGrid retries "
        "for up to 24 hours.",
    )
    help_text: str = Field(
        default=DEFAULT_HELP_TEXT, description="Reply sent to an inbound HELP message."
    )
    ack_words: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_words)] = Field(
        default=("OK", "ACK", "GOT IT", "Y"),
        description="Replies that acknowledge without choosing an option (comma-separated in env).",
    )
    grace: Duration = Field(
        default=timedelta(days=7),
        description="How long after exhausted/expired an acknowledgement is still accepted.",
    )

    @field_validator("secret_key")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        checked_secret_key(value)  # a ConfigurationError, not a ValidationError, to name the env
        return value

    @field_validator("twilio_sms_rate", "twilio_voice_rate", "sendgrid_rate")
    @classmethod
    def _pace(cls, value: float | None) -> float | None:
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError("must be a positive number of sends per second, or 'off'")
        return value

    @field_validator("signature_max_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @field_validator("grace")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value
