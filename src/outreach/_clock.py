"""The only place that reads the wall clock or sleeps.

Everything else takes a :class:`Clock`, so tests and simulations move time with
:class:`FakeClock` (public as ``outreach.testing.FakeClock``) instead of waiting.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from outreach._durations import parse_duration


class Clock(Protocol):
    """Source of time for the runner, the client and retries."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    async def sleep(self, delay: timedelta) -> None:
        """Wait for ``delay`` (used by short in-process retries)."""
        ...

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        """Wait until ``when`` (forever if None) or until ``wake`` is set, whichever comes first."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.sleep(max(delay.total_seconds(), 0.0))

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as
        # ``wake`` is set (a worker told to stop would carry on).
        if wake.is_set():
            return
        timeout = None if when is None else max((when - self.now()).total_seconds(), 0.0)
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({woken}, timeout=timeout)
        finally:
            woken.cancel()


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
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:  # a cancelled sleeper leaves no task behind
                woken.cancel()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
