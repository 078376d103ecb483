"""Which channels a configuration error switched off, and when to try them again.

A circuit breaker per channel: a ``ConfigurationError`` (bad credentials, a 401/403) switches
the channel off for ``probe_after``; once that has passed it is half-open: the next step on it
is tried (the probe). A probe that fails switches it off again for twice as long, up to
``probe_max``; the first success switches it back on. Credentials fixed a minute after an
outage are picked up without a restart, and a channel that stays broken costs one request per
backoff, not one per notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(slots=True)
class _Off:
    reason: str
    until: datetime
    backoff: timedelta


@dataclass
class ChannelHealth:
    """Tracks channels switched off by configuration errors; all times are the caller's."""

    probe_after: timedelta = timedelta(minutes=1)
    probe_max: timedelta = timedelta(minutes=30)
    _off: dict[str, _Off] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.probe_after <= timedelta(0) or self.probe_max < self.probe_after:
            raise ValueError("need 0 < probe_after <= probe_max")

    def unavailable(self, now: datetime) -> dict[str, str]:
        """The channels off at ``now`` (not yet due for a probe), each with the reason."""
        if not self._off:
            return {}
        return {
            name: f"{off.reason} (tried again after {off.until:%Y-%m-%d %H:%M:%S %Z})"
            for name, off in self._off.items()
            if now < off.until
        }

    def failed(self, channel: str, reason: str, now: datetime) -> timedelta | None:
        """A send on ``channel`` raised a configuration error at ``now``.

        Returns how long the channel is now off when this switched it off (it was on, or this
        was the probe), None when it already was off (a concurrent send reporting the same).
        """
        off = self._off.get(channel)
        if off is not None and now < off.until:
            return None
        backoff = self.probe_after if off is None else min(off.backoff * 2, self.probe_max)
        self._off[channel] = _Off(reason, now + backoff, backoff)
        return backoff

    def succeeded(self, channel: str) -> bool:
        """A send on ``channel`` went through; True when that switched the channel back on."""
        return self._off.pop(channel, None) is not None
