"""Pacing: how fast each channel may send, and how often one person may be contacted.

Both limits defer a send, never drop it. A channel's ``rate`` (sends, or SMS segments, per
second) is kept by a virtual-scheduling token bucket: each send reserves the next free slot.
The per-recipient cap (at most ``count`` messages per ``per`` on a medium) stops a burst of
events from turning into a flood to one person. The counters live in the process: several
workers on one store do not share them yet (docs/channels.md says what that means).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from outreach._models import Medium


@dataclass(frozen=True, slots=True)
class RecipientCap:
    """At most ``count`` messages per ``per`` to one address on each of ``media``."""

    count: int = 3
    per: timedelta = timedelta(hours=1)
    media: frozenset[Medium] = frozenset({Medium.SMS, Medium.VOICE})


DEFAULT_CAP = RecipientCap()
_SWEEP_EVERY = 10_000


@dataclass
class Pacer:
    """Decides when a send may start; ``horizon`` is the longest a runner waits in process."""

    rates: Mapping[str, float | None]
    cap: RecipientCap | None = field(default_factory=RecipientCap)
    horizon: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        self._next_free: dict[str, datetime] = {}
        # Send times per (medium, address), newest last; at most cap.count kept. Addresses
        # not written to for a whole period are swept now and then, so a long-running worker's
        # memory follows its recent traffic, not everyone it ever contacted. Keys and values
        # are tuples of strings and datetimes, which the garbage collector stops tracking:
        # with one entry per person contacted, lists here made every full collection crawl.
        self._recent: dict[tuple[str, str], tuple[datetime, ...]] = {}
        self._admitted = 0

    def admit(self, channel: str, medium: Medium, address: str, now: datetime) -> datetime:
        """Reserve a slot and return when the send may start.

        A time further than ``horizon`` away reserves nothing: the caller should defer the
        step to that time instead of holding it in process.
        """
        start = max(now, self._next_free.get(channel, now), self._cap_frees(medium, address, now))
        if start - now > self.horizon:
            return start
        self._reserve(channel, start, 1.0)
        if self.cap is not None and medium in self.cap.media:
            key = (medium.value, address)
            self._recent[key] = (*self._recent.get(key, ()), start)[-self.cap.count :]
            self._admitted += 1
            if self._admitted % _SWEEP_EVERY == 0:
                self._sweep(now - self.cap.per)
        return start

    def refund(self, medium: Medium, address: str) -> None:
        """Give back the newest place in ``address``'s cap on ``medium``: that send raised, so
        it reached no one (a refused re-attempt must not hold the step back for an hour)."""
        key = (medium.value, address)
        recent = self._recent.get(key)
        if recent:
            self._recent[key] = recent[:-1]

    def charge_extra(self, channel: str, cost: float) -> None:
        """Count ``cost`` more units (the extra segments of a long SMS) against the rate."""
        if channel in self._next_free:
            self._reserve(channel, self._next_free[channel], cost)

    def _reserve(self, channel: str, begin: datetime, cost: float) -> None:
        rate = self.rates.get(channel)
        if rate:
            self._next_free[channel] = begin + timedelta(seconds=cost / rate)

    def _cap_frees(self, medium: Medium, address: str, now: datetime) -> datetime:
        """The first instant another message may go to this address."""
        if self.cap is None or medium not in self.cap.media:
            return now
        recent = self._recent.get((medium.value, address), ())
        if len(recent) < self.cap.count or recent[0] <= now - self.cap.per:
            return now
        return recent[0] + self.cap.per

    def _sweep(self, before: datetime) -> None:
        """Forget addresses whose newest send is older than ``before``."""
        self._recent = {key: times for key, times in self._recent.items() if times[-1] > before}
