"""Several providers for one medium: the first that can take the message sends it."""

from __future__ import annotations

import logging

from outreach.channels._base import Channel, Message, Receipt, as_channel
from outreach.exceptions import ConfigurationError, PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger("outreach.channels.failover")


class Failover(Channel):
    """Tries ``channels`` in order; a transient or configuration failure moves to the next.

    A permanent failure (an invalid number, an opt-out) is about the address, not the
    provider, so it is raised at once. When every provider fails, the last error is raised
    and the runner retries or escalates as usual.
    """

    def __init__(
        self,
        *channels: Channel,
        name: str | None = None,
        rate: float | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        if not channels:
            raise ConfigurationError("Failover needs at least one channel")
        adopted = tuple(as_channel(c) for c in channels)
        media = {c.medium for c in adopted}
        if len(media) != 1:
            raise ConfigurationError(
                f"Failover channels must reach the same medium, got {sorted(map(str, media))}"
            )
        self.channels = adopted
        self.medium = media.pop()
        self.name = name or "failover(" + ",".join(c.name for c in adopted) + ")"
        rates = [c.rate for c in adopted if c.rate]
        self.rate = rate if rate is not None else min(rates, default=None)
        """Defaults to the slowest provider's rate: any of them may carry the next send."""
        self.max_in_flight = max_in_flight

    async def send(self, message: Message) -> Receipt:
        last: Exception | None = None
        for channel in self.channels:
            try:
                return await channel.send(message)
            except PermanentDeliveryError:
                raise
            except (TransientDeliveryError, ConfigurationError) as error:
                log.warning("%s failed (%s); trying the next provider", channel.name, error)
                last = error
        assert last is not None
        raise last

    async def cancel(self, provider_id: str) -> None:
        """Hang up a call through whichever provider placed it."""
        last: Exception | None = None
        for channel in self.channels:
            try:
                await channel.cancel(provider_id)
                return
            except Exception as error:  # not this provider's call, or it failed: try the next
                last = error
        if last is not None:
            raise last

    async def aclose(self) -> None:
        for channel in self.channels:
            await channel.aclose()
