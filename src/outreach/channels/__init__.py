"""Channels: adapters that hand one rendered message to a provider.

A channel translates and raises; it never retries, paces or decides escalation (the runner
does). Its whole interface is :class:`Channel`.
"""

from outreach.channels._base import Channel, Message, Receipt, resolve_media
from outreach.channels._registry import available_channels, build_channel
from outreach.channels.console import Console
from outreach.channels.failover import Failover
from outreach.channels.sendgrid import SendGridEmail

__all__ = [
    "Channel",
    "Console",
    "Failover",
    "Message",
    "Receipt",
    "SendGridEmail",
    "available_channels",
    "build_channel",
    "resolve_media",
]
