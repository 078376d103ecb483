"""A virtual clock the simulated customers keep up with."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from outreach._clock import FakeClock

if TYPE_CHECKING:
    from outreach._simulator._simulator import ProviderSimulator

__all__ = ["KeptClock"]

_PLAYING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "outreach_sim_playing", default=False
)
"""Set while a sleeper plays the simulators' actions (their callbacks run in its task)."""


class KeptClock(FakeClock):
    """A :class:`FakeClock` whose sleepers never carry time past what the simulators still
    have to do.

    On a plain FakeClock a paced send sleeping 40 s moves time 40 s at once, whatever the
    customers were due to do meanwhile: through a long burst of paced sends (10,000 texts at
    10 a second take 17 minutes) every reply would wait for the burst's end. Here a sleeper
    first plays the simulators' actions due by its wake-up, in time order, each at its own
    moment; other sleepers wait their turn. The actions' callbacks must run in the sleeper's
    task (webhooks served in process, as ``Sandbox(in_process=True)`` does): a sleep inside
    one moves time as on a FakeClock.
    """

    def __init__(self, start: datetime | str | None = None) -> None:
        super().__init__(start)
        self.simulators: Sequence[ProviderSimulator] = ()
        """Whose actions sleepers play (set once they exist)."""
        self._turn: asyncio.Lock | None = None

    async def sleep(self, delay: timedelta) -> None:
        wake_up = self.now() + max(delay, timedelta(0))
        await self.play(until=wake_up)
        await super().sleep(wake_up - self.now())

    async def play(self, *, until: datetime | None = None) -> None:
        """Play the simulators' actions due by ``until`` (default: now), moving the clock to
        each one's moment, in turn with the sleepers."""
        if _PLAYING.get():  # a callback being played: its sleep moves time as on a FakeClock
            return
        self._turn = self._turn or asyncio.Lock()
        async with self._turn:
            playing = _PLAYING.set(True)
            try:
                end = until or self.now()
                while (due := self._next_action()) is not None and due <= end:
                    if due > self.now():
                        self.set(due)
                    for sim in self.simulators:
                        await sim.run_due()
            finally:
                _PLAYING.reset(playing)

    def _next_action(self) -> datetime | None:
        pending = [t for t in (sim.next_due() for sim in self.simulators) if t is not None]
        return min(pending, default=None)
