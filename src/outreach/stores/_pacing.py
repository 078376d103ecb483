"""How the SQL stores answer :meth:`Store.pace`: a send's limits are charged in order, each by
one upsert (the ``pace`` statement), the next one starting no earlier than the one before
allows; a send one of whose limits is beyond the horizon gives back what the earlier ones
charged, so a deferred send holds no place anywhere. Sends deferred by one bucket in one call
are given starts one step apart, in order (the k-th, k steps after the first), not all the
first one's: a backlog deferred together would otherwise come back due together, and be
claimed and deferred again, horizon after horizon.

The walk is shared by the stores and kept free of I/O: a store runs each round's statements
(one pipeline or ``executemany``) in a single transaction and feeds the answers back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from outreach.stores import Limit

SWEEP_EVERY = 10_000
"""Sends paced between two sweeps of spent buckets (per store object)."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One statement of a round: charge ``limit`` for a start no earlier than ``after``."""

    send: int
    limit: Limit
    after: timedelta


@dataclass
class PaceWalk:
    """The state of one ``pace`` call: per send, the start found so far."""

    sends: Sequence[Sequence[Limit]]
    horizon: timedelta
    delays: list[timedelta] = field(init=False)
    refunds: list[Limit] = field(init=False, default_factory=list)
    _deferred: dict[tuple[str, str], timedelta] = field(init=False, default_factory=dict)
    """Per bucket refusing sends in this call: the start the next one refused is given."""
    _round: int = field(init=False, default=0)
    _open: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.delays = [timedelta(0)] * len(self.sends)
        self._open = [i for i, limits in enumerate(self.sends) if limits]

    def next_round(self) -> list[Charge]:
        """The charges to make next (none: the walk is over)."""
        self._open = [i for i in self._open if self._round < len(self.sends[i])]
        return [Charge(i, self.sends[i][self._round], self.delays[i]) for i in self._open]

    def answer(self, charges: Sequence[Charge], delays: Sequence[timedelta]) -> None:
        """What each charge of the round said: the start's delay from now."""
        refused = set()
        for charge, delay in zip(charges, delays, strict=True):
            self.delays[charge.send] = max(delay, charge.after)
            if delay > self.horizon:
                bucket = (charge.limit.scope, charge.limit.key)
                start = max(self.delays[charge.send], self._deferred.get(bucket, timedelta(0)))
                self.delays[charge.send] = start
                self._deferred[bucket] = start + charge.limit.step
                refused.add(charge.send)
                done = self.sends[charge.send][: self._round]
                self.refunds += [dataclasses.replace(limit, cost=-limit.cost) for limit in done]
        self._open = [i for i in self._open if i not in refused]
        self._round += 1
