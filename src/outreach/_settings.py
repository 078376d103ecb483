"""Settings read from ``OUTREACH_*`` environment variables; keyword arguments win."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from outreach._durations import Duration

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
        default=None, description="Key that signs acknowledgement and unsubscribe tokens."
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
