"""Settings read from ``OUTREACH_*`` environment variables; keyword arguments win."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator
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

    Every field can come from ``OUTREACH_<FIELD>`` (e.g. ``OUTREACH_TWILIO_FROM``); arguments
    passed to the constructor take precedence. No ``.env`` file is read unless a subclass or
    the caller asks for one (``Settings(_env_file=".env")``).
    """

    model_config = SettingsConfigDict(env_prefix="OUTREACH_", extra="ignore")

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

    twilio_account_sid: str | None = Field(default=None, description="Twilio account SID.")
    twilio_auth_token: SecretStr | None = Field(
        default=None, description="Twilio auth token (API calls and webhook signatures)."
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

    sendgrid_api_key: SecretStr | None = Field(default=None, description="SendGrid API key.")
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
