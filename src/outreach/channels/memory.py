"""A channel that keeps what it is asked to send in an outbox instead of sending it, for tests.

Public as ``outreach.testing.InMemoryChannel`` (and ``outreach.channels.InMemoryChannel``).
"""

from __future__ import annotations

import itertools
from collections import deque

from outreach._models import AttemptStatus, Medium
from outreach.channels._base import Channel, Message, Receipt
from outreach.exceptions import DeliveryError, PermanentDeliveryError, TransientDeliveryError


class InMemoryChannel(Channel):
    """Records what it is asked to send in ``outbox`` instead of sending it.

    ``fail_next`` makes the next sends raise (transient by default). ``rate`` and
    ``max_in_flight`` pace it like a provider adapter; with ``senders`` it reports the one
    each message went from (``Message.sender``, else the first). Subclass it and override ``send``
    (calling ``super().send``) to instrument a test.
    """

    def __init__(
        self,
        medium: Medium | str | None = None,
        *,
        name: str = "memory",
        rate: float | None = None,
        max_in_flight: int | None = None,
        senders: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.senders = tuple(senders)
        self.medium = None if medium is None else Medium(medium)
        self.rate = rate
        self.max_in_flight = max_in_flight
        self.outbox: list[Message] = []
        self.cancelled: list[str] = []
        self._failures: deque[DeliveryError] = deque()
        self._ids = itertools.count(1)

    def fail_next(
        self, count: int = 1, *, permanent: bool = False, error: DeliveryError | None = None
    ) -> None:
        """Make the next ``count`` sends raise ``error`` (or a generic transient/permanent one)."""
        if error is None:
            kind = PermanentDeliveryError if permanent else TransientDeliveryError
            error = kind(f"{self.name}: failure injected by the test")
        self._failures.extend([error] * count)

    async def send(self, message: Message) -> Receipt:
        if self._failures:
            raise self._failures.popleft()
        self.outbox.append(message)
        sender = message.sender or (self.senders[0] if self.senders else None)
        return Receipt(
            provider_id=f"{self.name}-{next(self._ids)}", status=AttemptStatus.SENT, sender=sender
        )

    async def cancel(self, provider_id: str) -> None:
        """Record that the runner hung up this call."""
        self.cancelled.append(provider_id)

    async def aclose(self) -> None:
        """Nothing to release."""
