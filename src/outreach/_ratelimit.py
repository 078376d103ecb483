"""Pacing: how fast each sender may send, and how often one person may be contacted.

Both limits defer a send, never drop it, and both are kept in the store (``Store.pace``), so
every process on one store respects one set of limits. A channel's ``rate`` (sends, or SMS
segments, per second) is counted per (channel, sender); the per-recipient cap (at most
``count`` messages per ``per`` on a medium) stops a burst of events from turning into a
flood to one person. Each is a GCRA bucket: a :class:`~outreach.stores.Limit`. This module
only says which limits a send is charged against; the runner asks the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from outreach._models import Medium
from outreach.exceptions import ConfigurationError
from outreach.stores import Limit


@dataclass(frozen=True, slots=True)
class RecipientCap:
    """At most ``count`` messages per ``per`` to one address on each of ``media``.

    Kept as a bucket whose emission interval is ``per`` with a burst of ``count``: in any
    span shorter than ``per`` at most ``count`` go out; after a burst, one per ``per``.
    """

    count: int = 3
    per: timedelta = timedelta(hours=1)
    media: frozenset[Medium] = frozenset({Medium.SMS, Medium.VOICE})

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigurationError(f"RecipientCap: count must be at least 1, got {self.count}")
        if self.per <= timedelta(0):
            raise ConfigurationError(f"RecipientCap: per must be a positive time, got {self.per}")


DEFAULT_CAP = RecipientCap()


@dataclass(frozen=True)
class Pacer:
    """The limits of each send; ``horizon`` is the longest a runner waits in process (a
    later start defers the step in the store instead).

    ``rates`` and ``senders`` are per channel name: processes that pace one sender together
    must configure it under the same channel name.
    """

    rates: Mapping[str, float | None]
    cap: RecipientCap | None = field(default_factory=RecipientCap)
    horizon: timedelta = timedelta(seconds=10)
    senders: Mapping[str, str | None] = field(default_factory=dict)

    def limits(self, channel: str, medium: Medium, address: str) -> tuple[Limit, ...]:
        """What one send to ``address`` on ``channel`` is charged against: the cap first
        (the likelier to defer it for long), then the sender's rate."""
        cap = self.capped(medium, address)
        rate = self.rate(channel)
        return (*cap, *rate)

    def capped(self, medium: Medium, address: str, cost: float = 1.0) -> tuple[Limit, ...]:
        """The cap's bucket for ``address`` on ``medium`` (none when it is not capped)."""
        if self.cap is None or medium not in self.cap.media:
            return ()
        return (Limit(f"cap:{medium.value}", address, self.cap.per, self.cap.count, cost),)

    def rate(self, channel: str, cost: float = 1.0) -> tuple[Limit, ...]:
        """The bucket of ``channel``'s sender (none when the channel is not paced)."""
        rate = self.rates.get(channel)
        if not rate:
            return ()
        sender = self.senders.get(channel) or ""
        return (Limit(f"rate:{channel}", sender, timedelta(seconds=1 / rate), cost=cost),)
