"""The sweeper: every worker looks, at most once a minute, for notifications that no runner
will move on by itself, and says so (modelled on Grafana OnCall's escalation auditor).

It reports; it does not repair: a stuck notification means a bug or an outage somebody should
look at, and guessing what it should have done could send twice. Each finding is a WARNING
line (notification ids only: no addresses, no text) and a ``stuck`` event in the store's log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from outreach._clock import Clock
from outreach.exceptions import OutreachError
from outreach.stores import Store, Stuck

log = logging.getLogger("outreach.sweeper")


@dataclass
class Sweeper:
    """Looks for stuck notifications no more often than ``every``.

    A notification counts as stuck when it is ``active`` with nothing scheduled and no live
    lease, or has an attempt ``sending`` whose lease ran out more than ``lapsed_for`` ago
    without a takeover. At most ``limit`` are reported per sweep.
    """

    store: Store
    clock: Clock
    every: timedelta = timedelta(minutes=1)
    lapsed_for: timedelta = timedelta(minutes=10)
    limit: int = 100
    _next: datetime | None = field(default=None, init=False)

    async def sweep_if_due(self) -> list[Stuck]:
        """Sweep when ``every`` has passed since the last sweep (or none ran yet); what it
        found. A store error is logged and skipped until the next sweep."""
        now = self.clock.now()
        if self._next is not None and now < self._next:
            return []
        self._next = now + self.every
        try:
            found = await self.store.sweep(
                now, lapsed_before=now - self.lapsed_for, limit=self.limit
            )
        except OutreachError:
            log.warning("the sweep for stuck notifications failed", exc_info=True)
            return []
        for stuck in found:
            log.warning("notification %s is stuck: %s", stuck.notification_id, stuck.reason)
        return found
