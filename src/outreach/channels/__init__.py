"""Channels: adapters that hand one rendered message to a provider.

A channel translates and raises; it never retries, paces or decides escalation (the runner
does). Its whole interface is :class:`Channel`. The provider adapters are imported on first
use, so code that never sends through Twilio or SendGrid never loads their SDKs.
"""

from typing import TYPE_CHECKING, Any

from outreach.channels._base import Channel, Message, Receipt, resolve_media
from outreach.channels._registry import available_channels, build_channel
from outreach.channels.console import Console
from outreach.channels.failover import Failover
from outreach.channels.memory import InMemoryChannel

if TYPE_CHECKING:
    from outreach.channels.sendgrid import SendGridEmail
    from outreach.channels.twilio import TwilioSMS, TwilioVoice

__all__ = [
    "Channel",
    "Console",
    "Failover",
    "InMemoryChannel",
    "Message",
    "Receipt",
    "SendGridEmail",
    "TwilioSMS",
    "TwilioVoice",
    "available_channels",
    "build_channel",
    "resolve_media",
]

_LAZY = {
    "SendGridEmail": "outreach.channels.sendgrid",
    "TwilioSMS": "outreach.channels.twilio",
    "TwilioVoice": "outreach.channels.twilio",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'outreach.channels' has no attribute {name!r}")
