"""The channel interface: what goes into a send and what comes back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from outreach._models import AttemptStatus, Medium, Option
from outreach.exceptions import ConfigurationError


@dataclass(frozen=True, slots=True)
class Message:
    """Everything one attempt sends: the rendered text and where it goes.

    ``ack_url`` opens the acknowledgement page; ``option_urls`` maps each option key to a link
    that chooses it; ``unsubscribe_url`` is the one-click opt-out (RFC 8058) for email.
    """

    notification_id: str
    attempt_id: str
    medium: Medium
    to: str
    body: str
    subject: str | None = None
    html: str | None = None
    locale: str = "en"
    options: tuple[Option, ...] = ()
    ack_url: str | None = None
    option_urls: Mapping[str, str] = field(default_factory=dict)
    unsubscribe_url: str | None = None
    segments: int | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the provider answered: its id for the message and the first known status.

    ``sender`` is the number or address the message went out from, when known: an inbound
    reply is matched to the last message sent from the number it was sent to.
    """

    provider_id: str | None
    status: AttemptStatus = AttemptStatus.SENT
    sender: str | None = None


@runtime_checkable
class Channel(Protocol):
    """A provider adapter. ``send`` raises from the error tree when it cannot send.

    A channel may also have a ``medium`` attribute; without one, the name it is configured
    under (``"sms"``, ``"email"``, ``"voice"``) says which address it reaches.
    """

    name: str

    async def send(self, message: Message) -> Receipt:
        """Hand one message to the provider."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def resolve_media(channels: Mapping[str, Channel]) -> dict[str, Medium]:
    """Which medium each configured channel reaches, from its ``medium`` or its name."""
    media = {}
    for name, channel in channels.items():
        medium = getattr(channel, "medium", None)
        if medium is None:
            try:
                medium = Medium(name)
            except ValueError:
                raise ConfigurationError(
                    f"channel {name!r}: cannot tell whether it sends SMS, email or calls; "
                    "give it medium='sms'|'email'|'voice' or configure it under one of those names"
                ) from None
        media[name] = Medium(medium)
    return media
