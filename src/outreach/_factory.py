"""Building a client for the command line: from settings, or from the user's own factory."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from outreach._client import AsyncClient
from outreach._settings import Settings
from outreach.channels import Channel
from outreach.exceptions import ConfigurationError


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """The provider channels whose credentials are configured, under their medium's name
    (``sms``, ``voice``, ``email``), paced as the settings say (``OUTREACH_TWILIO_SMS_RATE``,
    ``OUTREACH_TWILIO_SMS_MAX_IN_FLIGHT``, ...)."""
    channels: dict[str, Channel] = {}
    if settings.twilio_account_sid and settings.twilio_auth_token:
        from outreach.channels.twilio import TwilioSMS, TwilioVoice

        if settings.twilio_from or settings.twilio_messaging_service_sid:
            channels["sms"] = TwilioSMS(
                settings=settings,
                rate=settings.twilio_sms_rate,
                max_in_flight=settings.twilio_sms_max_in_flight,
            )
        if settings.twilio_voice_from or settings.twilio_from:
            channels["voice"] = TwilioVoice(
                settings=settings,
                rate=settings.twilio_voice_rate,
                max_in_flight=settings.twilio_voice_max_in_flight,
            )
    if settings.sendgrid_api_key and settings.sendgrid_from:
        from outreach.channels.sendgrid import SendGridEmail

        channels["email"] = SendGridEmail(
            settings=settings,
            rate=settings.sendgrid_rate,
            max_in_flight=settings.sendgrid_max_in_flight,
        )
    return channels


def load_client(app: str | None, settings: Settings) -> AsyncClient:
    """``--app module:factory`` (a callable returning an AsyncClient), else one from settings."""
    if app is None:
        return AsyncClient(channels=channels_from_settings(settings), settings=settings)
    module_name, _, attribute = app.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--app {app!r}: write it as module:factory")
    try:
        factory: Callable[[], Any] = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"--app {app!r}: {exc}") from exc
    client = factory()
    if not isinstance(client, AsyncClient):
        raise ConfigurationError(
            f"--app {app!r} returned {type(client).__name__}, not an AsyncClient"
        )
    return client
