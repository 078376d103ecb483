"""Which of a channel's numbers a text goes from, so a reply lands on the notice it answers.

A reply is matched to the notification last sent from the number it was sent *to*
(``Store.latest_sent_to``). With one number, a customer with two notices at once (outbound and
return flight) cannot say which one "2" answers. With several (``TwilioSMS(senders=[...])``),
each of a recipient's concurrent notifications keeps a number of its own:

- a notification already texted from one of them keeps it (its earlier texts' replies must
  still match);
- otherwise it takes the first number none of the recipient's other active notifications uses;
- when all are taken, the one they used longest ago (the reply then falls back to the most
  recent notice, and its confirmation names it).

Texts still in flight are not in the store with their number yet, so each runner also remembers
the numbers it chose for a while (``HOLD``), and chooses one at a time: two notices started
together for one customer go out from different numbers. (Two *processes* texting one customer
in the same instant may still pick the same number; the confirmation then names the notice.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta

from outreach._clock import Clock
from outreach._models import Attempt, Medium, Notification
from outreach.stores import Store

HOLD = timedelta(minutes=5)
"""How long a runner counts a number it chose as taken before the store shows it."""


class SenderChoice:
    """One runner's choices of sender numbers, one at a time."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._lock = asyncio.Lock()
        self._chosen: dict[tuple[Medium, str], dict[str, tuple[str, datetime]]] = {}

    async def choose(
        self, notification: Notification, attempt: Attempt, senders: tuple[str, ...]
    ) -> str | None:
        """The number ``attempt`` should go from, or None to leave it to the channel."""
        if len(senders) < 2 or attempt.medium is None or attempt.address is None:
            return None
        where = (attempt.medium, attempt.address)
        async with self._lock:
            now = self._clock.now()
            recent = {
                notification_id: (sender, at)
                for notification_id, (sender, at) in self._chosen.pop(where, {}).items()
                if now - at < HOLD
            }
            in_flight = {
                notification_id: sender
                for notification_id, (sender, _) in sorted(
                    recent.items(), key=lambda item: item[1][1], reverse=True
                )
            }
            sender = await choose_sender(
                self._store, notification, attempt, senders, now, in_flight
            )
            recent[notification.id] = (sender, now)
            self._chosen[where] = recent
            self._forget_old(now)
        return sender

    def _forget_old(self, now: datetime) -> None:
        """Drop the addresses whose choices have all expired: the least recently used come
        first (each choice moves its address to the end)."""
        while self._chosen:
            where, chosen = next(iter(self._chosen.items()))
            if any(now - at < HOLD for _, at in chosen.values()):
                return
            del self._chosen[where]


async def choose_sender(
    store: Store,
    notification: Notification,
    attempt: Attempt,
    senders: tuple[str, ...],
    now: datetime,
    in_flight: Mapping[str, str],
) -> str:
    """The number for ``attempt`` among ``senders`` (two or more), given the numbers other
    notifications to the same address were just given (``in_flight``, newest first)."""
    assert attempt.medium is not None
    assert attempt.address is not None
    mine = [
        a.sender
        for a in notification.attempts
        if a.medium is attempt.medium and a.address == attempt.address and a.sender in senders
    ]
    if mine and mine[-1] is not None:
        return mine[-1]
    if notification.id in in_flight:
        return in_flight[notification.id]
    since = now - notification.plan.grace
    others = await store.active_sent_to(attempt.medium, attempt.address, since=since)
    seen = {other.id for other in others}
    used: dict[str, None] = {}  # newest first
    for other_id, sender in in_flight.items():
        if other_id in seen or other_id == notification.id:
            continue  # the store knows its number now
        fresh = await store.get(other_id)
        if fresh is not None and not fresh.status.is_terminal:
            used.setdefault(sender)  # still in flight: its number is not in the store yet
    for other in others:
        if other.id == notification.id:
            continue
        for a in sorted(other.attempts, key=lambda a: a.sent_at or a.created_at, reverse=True):
            if a.medium is attempt.medium and a.address == attempt.address and a.sender:
                used.setdefault(a.sender)
                break
    free = [sender for sender in senders if sender not in used]
    if free:
        return free[0]
    return next(sender for sender in reversed(used) if sender in senders)
