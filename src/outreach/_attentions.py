"""Attention records from the engine's decisions: the shell's half of "a person should act".

The engine says *that* a notification needs a person (:class:`OpenAttention`); this turns
that into a log entry carrying the whole record (with the truthful outcome of an unreached
ending, which the pure engine cannot put into words), so that the store writes the record in
the same transaction as its cause and the hooks rebuild it from the committed log.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from outreach._engine import Decision, OpenAttention
from outreach._models import Attention, AttentionReason, Event, EventKind, Notification
from outreach._paging import paged_for
from outreach.outcomes import never_reached


def with_attentions(decision: Decision) -> Decision:
    """``decision`` with each :class:`OpenAttention` action turned into an
    ``attention_opened`` log entry (none on a page: see ``outreach._paging``)."""
    wanted = [a for a in decision.actions if isinstance(a, OpenAttention)]
    if not wanted:
        return decision
    n = decision.notification
    if paged_for(n) is not None:  # a page nobody answers ends in on_attention_unanswered
        kept = tuple(a for a in decision.actions if not isinstance(a, OpenAttention))
        return replace(decision, actions=kept)
    opened = [
        Event(
            at=n.updated_at,
            notification_id=n.id,
            kind=EventKind.ATTENTION_OPENED,
            data={
                "attention_id": _attention_id(n, action.reason, i),
                "reason": action.reason.value,
                "detail": never_reached(n) if action.detail is None else action.detail,
            },
        )
        for i, action in enumerate(wanted)
    ]
    kept = tuple(a for a in decision.actions if not isinstance(a, OpenAttention))
    return replace(decision, actions=kept, events=(*decision.events, *opened))


def _attention_id(n: Notification, reason: AttentionReason, index: int) -> str:
    """Short, and the same for the same decision: a decision is stored at most once per
    version of its notification (every write is version-checked), so the hooks, rebuilding
    the record from the committed log, name the row the store wrote."""
    key = f"{n.id}/{n.version}/{reason.value}/{index}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def attention_of(event: Event, notification: Notification) -> Attention:
    """The record an ``attention_opened`` entry of ``notification`` describes."""
    return Attention(
        id=event.data["attention_id"],
        notification_id=notification.id,
        recipient_id=notification.recipient.id,
        campaign=notification.campaign,
        reason=AttentionReason(event.data["reason"]),
        detail=event.data["detail"],
        opened_at=event.at,
    )


def attentions_in(events: list[Event], notification: Notification) -> list[Attention]:
    """The records the ``attention_opened`` entries among ``events`` describe."""
    return [attention_of(e, notification) for e in events if e.kind is EventKind.ATTENTION_OPENED]
