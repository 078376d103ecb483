"""What the SQL stores share for the sweeper: its look-ups, and the events it logs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from outreach._models import Event, EventKind
from outreach.stores import Stuck

QUERIES = (
    ("stuck_sending", "an attempt is sending and its lease ran out without a takeover"),
    ("stuck_active", "active with nothing scheduled"),
)
"""The named look-ups of stuck notifications (in each store's ``queries.sql``), and why; the
more telling reason first (one notification is reported once)."""


def distinct(found: Iterable[tuple[str, str]]) -> list[Stuck]:
    """Each notification once, with the first reason found for it."""
    reasons: dict[str, str] = {}
    for notification_id, reason in found:
        reasons.setdefault(notification_id, reason)
    return [Stuck(notification_id, reason) for notification_id, reason in reasons.items()]


def events(found: Sequence[Stuck], now: datetime) -> list[Event]:
    """One ``stuck`` event per finding."""
    return [
        Event(
            at=now,
            notification_id=s.notification_id,
            kind=EventKind.STUCK,
            data={"reason": s.reason},
        )
        for s in found
    ]
