"""Test doubles shipped with the library: a clock you move by hand and a channel with an outbox."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from outreach._durations import parse_duration
from outreach._models import AttemptStatus, Medium
from outreach.channels import Channel, Message, Receipt
from outreach.exceptions import DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = [
    "CallBehaviour",
    "EmailBehaviour",
    "FakeClock",
    "InMemoryChannel",
    "Persona",
    "ProviderSimulator",
    "Sandbox",
    "SmsBehaviour",
]

_SIMULATOR = {"CallBehaviour", "EmailBehaviour", "Persona", "ProviderSimulator", "SmsBehaviour"}


def __getattr__(name: str) -> Any:
    # The simulator brings uvicorn, starlette and cryptography: load it only when asked for.
    if name in _SIMULATOR:
        from outreach import _simulator

        return getattr(_simulator, name)
    if name == "Sandbox":
        from outreach._sandbox import Sandbox

        return Sandbox
    raise AttributeError(f"module 'outreach.testing' has no attribute {name!r}")


if TYPE_CHECKING:
    from outreach._sandbox import Sandbox
    from outreach._simulator import (
        CallBehaviour,
        EmailBehaviour,
        Persona,
        ProviderSimulator,
        SmsBehaviour,
    )

_DEFAULT_START = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to: ``advance("15m")``.

    Sleeping (retries, pacing) returns at once and moves the clock to the sleeper's wake-up.
    ``advance`` may be called from any thread, e.g. a test driving the sync ``Client``.
    """

    def __init__(self, start: datetime | str | None = None) -> None:
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        start = start or _DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start, e.g. 2026-11-23T14:00+00:00")
        self._now = start.astimezone(UTC)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta | str) -> datetime:
        """Move time forward by ``by`` (``"15m"`` or a timedelta) and wake sleepers."""
        delta = parse_duration(by)
        if not isinstance(delta, timedelta) or delta < timedelta(0):
            raise ValueError(f"cannot advance a clock by {by!r}")
        self._now += delta
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_settle, future)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (not backwards)."""
        self.advance(when - self._now)

    async def sleep(self, delay: timedelta) -> None:
        """Return at once, the clock moved to at least ``delay`` after the call.

        Concurrent sleepers each push the clock to their own wake-up time, so 200 sends paced
        0.1 s apart end 20 s later, not 200 x their waits later.
        """
        target = self._now + max(delay, timedelta(0))
        await asyncio.sleep(0)
        if target > self._now:
            self.advance(target - self._now)

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not wake.is_set() and (when is None or self._now < when):
            moved: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, moved))
            woken = asyncio.ensure_future(wake.wait())
            waiting: set[asyncio.Future[Any]] = {moved, woken}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class InMemoryChannel(Channel):
    """Records what it is asked to send in ``outbox`` instead of sending it.

    ``fail_next`` makes the next sends raise (transient by default). ``rate`` and
    ``max_in_flight`` pace it like a provider adapter. Subclass it and override ``send``
    (calling ``super().send``) to instrument a test.
    """

    def __init__(
        self,
        medium: Medium | str | None = None,
        *,
        name: str = "memory",
        rate: float | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.name = name
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
        return Receipt(provider_id=f"{self.name}-{next(self._ids)}", status=AttemptStatus.SENT)

    async def cancel(self, provider_id: str) -> None:
        """Record that the runner hung up this call."""
        self.cancelled.append(provider_id)

    async def aclose(self) -> None:
        """Nothing to release."""
