"""Timed provider behaviour: what the simulator will do, and when (on the injected clock)."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

__all__ = ["Action", "Clock", "Scheduler"]


class Clock(Protocol):
    """All the simulator needs of a clock: ``outreach.testing.FakeClock`` or the system one."""

    def now(self) -> datetime: ...


@dataclass(order=True, slots=True)
class Action:
    """One thing a provider will do at ``at``; ``key`` groups a call's or message's actions."""

    at: datetime
    seq: int
    key: str = field(compare=False)
    run: Callable[[], Awaitable[None]] = field(compare=False, repr=False)
    batchable: bool = field(default=False, compare=False)
    """Buffers something (a SendGrid event) that is posted with its due neighbours."""
    cancelled: bool = field(default=False, compare=False)


class Scheduler:
    """A time-ordered queue of actions; equal times keep the order they were added in.

    Safe to add to from another thread (a sync test scheduling an inbound text).
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._heap: list[Action] = []
        self._by_key: dict[str, list[Action]] = {}  # pending actions of each key, for cancel
        self._seq = itertools.count()
        self._lock = threading.RLock()
        self.on_change = on_change
        """Called after each ``add`` (wakes a simulator that runs its actions itself)."""

    def add(
        self,
        at: datetime,
        key: str,
        run: Callable[[], Awaitable[None]],
        *,
        batchable: bool = False,
    ) -> Action:
        """Queue ``run`` for ``at``."""
        with self._lock:
            action = Action(at, next(self._seq), key, run, batchable)
            heapq.heappush(self._heap, action)
            self._by_key.setdefault(key, []).append(action)
        if self.on_change is not None:
            self.on_change()
        return action

    def cancel(self, key: str) -> int:
        """Drop every pending action of ``key``; how many there were."""
        count = 0
        with self._lock:
            for action in self._by_key.pop(key, []):
                if not action.cancelled:
                    action.cancelled = True
                    count += 1
        return count

    def _prune(self) -> None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)

    def _taken(self, action: Action) -> Action:
        """``action``, out of the queue: no longer pending under its key."""
        same_key = self._by_key.get(action.key, [])
        if action in same_key:
            same_key.remove(action)
            if not same_key:
                del self._by_key[action.key]
        return action

    def peek(self) -> Action | None:
        """The next pending action, due or not."""
        with self._lock:
            self._prune()
            return self._heap[0] if self._heap else None

    def pop_due(self, now: datetime) -> Action | None:
        """The next action due at ``now``, removed from the queue; None if nothing is due."""
        with self._lock:
            head = self.peek()
            if head is None or head.at > now:
                return None
            return self._taken(heapq.heappop(self._heap))

    def next_due(self) -> datetime | None:
        """When the next pending action is due."""
        head = self.peek()
        return head.at if head else None

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for action in self._heap if not action.cancelled)
