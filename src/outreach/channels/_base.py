"""The channel interface: what goes into a send and what comes back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    sender: str | None = None
    """One of the channel's ``senders`` to send from, chosen by the runner; None: its default."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the provider answered: its id for the message and the first known status.

    ``sender`` is the number or address the message went out from, when known: an inbound
    reply is matched to the last message sent from the number it was sent to.
    """

    provider_id: str | None
    status: AttemptStatus = AttemptStatus.SENT
    sender: str | None = None


class Channel:
    """A provider adapter: the one seam between the runner and a provider.

    Subclass it and implement :meth:`send`; every other member has a default here, and the
    client and runner read them from this class rather than probing. ``send`` translates one
    rendered message into the provider's wire format and raises from the error tree when it
    cannot send; it never retries, paces or decides escalation.

    Attributes, read once when the client is built:

    - ``name``: for logs and errors.
    - ``medium``: which address it reaches; ``None`` (default): the name it is configured
      under (``"sms"``, ``"email"``, ``"voice"``) says.
    - ``rate``: sends (SMS: segments) per second per sender that the runner paces it to;
      ``None`` (default): no pacing.
    - ``sender``: the number or address it sends from; the rate is kept per (channel name,
      sender) in the store, shared by every process. ``None`` (default): one for the channel.
    - ``max_in_flight``: concurrent requests the runner allows it; ``None`` (default): the
      runner's own limit.
    - ``base_url``: where its provider is reached; ``None`` (default): no remote provider.
    - ``senders``: the numbers (or addresses) it can send from when the runner may choose
      (``Message.sender``); with two or more, a recipient's concurrent notifications are sent
      from different ones, so a reply's ``To`` names its conversation. ``()`` (default): the
      channel sends from its own.
    """

    name: str = "channel"
    medium: Medium | None = None
    rate: float | None = None
    sender: str | None = None
    max_in_flight: int | None = None
    base_url: str | None = None
    senders: tuple[str, ...] = ()

    async def send(self, message: Message) -> Receipt:
        """Hand one message to the provider."""
        raise NotImplementedError(f"{type(self).__name__} does not implement send()")

    async def cancel(self, provider_id: str) -> None:
        """Stop what ``provider_id`` names (hang up a call); by default there is nothing to
        stop once a message is handed over."""

    async def aclose(self) -> None:
        """Release connections; by default there are none."""


class _Adopted(Channel):
    """A channel object that does not derive from :class:`Channel` (it has ``name``,
    ``send`` and ``aclose``), given the base's defaults for whatever else it lacks."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        for attribute in ("medium", "rate", "sender", "max_in_flight", "base_url", "senders"):
            if hasattr(inner, attribute):
                setattr(self, attribute, getattr(inner, attribute))

    async def send(self, message: Message) -> Receipt:
        receipt: Receipt = await self.inner.send(message)
        return receipt

    async def cancel(self, provider_id: str) -> None:
        if hasattr(self.inner, "cancel"):
            await self.inner.cancel(provider_id)

    async def aclose(self) -> None:
        await self.inner.aclose()


def as_channel(channel: Channel | Any) -> Channel:
    """``channel`` itself when it derives from :class:`Channel`, else adopted into it."""
    if isinstance(channel, Channel):
        return channel
    if not all(hasattr(channel, member) for member in ("name", "send", "aclose")):
        raise ConfigurationError(
            f"{channel!r} is not a channel: subclass outreach.channels.Channel "
            "(or give it name, send() and aclose())"
        )
    return _Adopted(channel)


def resolve_media(channels: Mapping[str, Channel]) -> dict[str, Medium]:
    """Which medium each configured channel reaches, from its ``medium`` or its name."""
    media = {}
    for name, channel in channels.items():
        medium = channel.medium
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
