"""Attention records from the engine's decisions: the shell's half of "a person should act".

The engine says *that* a notification needs a person (:class:`OpenAttention`); this turns
that into a log entry carrying the record (with the truthful outcome of an unreached ending,
which the pure engine cannot put into words), so that the store writes the record in the same
transaction as its cause and the hooks rebuild it from the committed log.

A notification has at most one open record. A cause while one is open (a second unclear
reply; a plan ending unreached after a reply nobody understood; a handoff) is added to the
open record's detail, with an ``attention_updated`` entry, instead of opening another: one
customer, one case, one round of pages. The record keeps the reason it was opened for. Should
the record be resolved before the change commits, the change loses its check, as for a stale
version, and is decided again: the cause then opens a record of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from outreach._engine import Decision, OpenAttention
from outreach._models import Attention, AttentionReason, Event, EventKind, Notification
from outreach._paging import paged_for
from outreach.outcomes import never_reached
from outreach.stores import AttentionUpdate, Store

DETAIL_LIMIT = 1000
"""The longest a record's detail grows by later causes; the log keeps every one of them."""

MORE = "; more in the timeline"
"""What ends a detail that reached :data:`DETAIL_LIMIT`."""


def wants_attention(decision: Decision) -> bool:
    """Whether ``decision`` opens (or adds to) an attention record: only then is the open one
    looked up (:func:`open_attention`)."""
    return any(isinstance(a, OpenAttention) for a in decision.actions) and (
        paged_for(decision.notification) is None
    )


async def open_attention(store: Store, notification: Notification) -> Attention | None:
    """The open attention record of ``notification`` (the oldest, should there be several
    from before records were kept one per notification), if any."""
    found = await store.attentions(recipient_id=notification.recipient.id, open=True)
    return next((a for a in found if a.notification_id == notification.id), None)


def with_attentions(decision: Decision, record: Attention | None = None) -> Decision:
    """``decision`` with its :class:`OpenAttention` actions turned into log entries: one
    ``attention_opened`` (all its causes in one record) when the notification has no open
    ``record``, else an ``attention_updated`` per cause added to ``record``. None on a page
    (see ``outreach._paging``)."""
    wanted = [a for a in decision.actions if isinstance(a, OpenAttention)]
    if not wanted:
        return decision
    kept = tuple(a for a in decision.actions if not isinstance(a, OpenAttention))
    n = decision.notification
    if paged_for(n) is not None:  # a page nobody answers ends in on_attention_unanswered
        return replace(decision, actions=kept)
    if record is None:
        causes = [(a.reason, never_reached(n) if a.detail is None else a.detail) for a in wanted]
        (reason, detail), *later = causes
        for _, added in later:
            detail = merged_detail(detail, added)
        opened = Event(
            at=n.updated_at,
            notification_id=n.id,
            kind=EventKind.ATTENTION_OPENED,
            data={
                "attention_id": _attention_id(n, reason),
                "reason": reason.value,
                "detail": detail,
            },
        )
        return replace(decision, actions=kept, events=(*decision.events, opened))
    detail = record.detail
    updated = []
    for action in wanted:
        reason = action.reason
        added = action.detail if action.detail is not None else _ending(n, detail)
        detail = merged_detail(detail, added)
        updated.append(
            Event(
                at=n.updated_at,
                notification_id=n.id,
                kind=EventKind.ATTENTION_UPDATED,
                data={
                    "attention_id": record.id,
                    "reason": reason.value,
                    "detail": added,
                    "record_reason": record.reason.value,
                    "record_detail": detail,
                },
            )
        )
    return replace(decision, actions=kept, events=(*decision.events, *updated))


def merged_detail(detail: str, added: str) -> str:
    """A record's ``detail`` with a later cause's; at most :data:`DETAIL_LIMIT` characters
    (beyond, it says the rest is in the timeline)."""
    if detail.endswith(MORE):
        return detail
    merged = f"{detail}; then {added}"
    return merged if len(merged) <= DETAIL_LIMIT else detail + MORE


def _ending(n: Notification, detail: str) -> str:
    """An unreached ending added to a record's ``detail``: the status, and the reasons the
    record does not say yet (the reply nobody understood it was opened for, say)."""
    said = "; ".join(part for part in never_reached(n).split("; ") if part not in detail)
    return f"{n.status.value}: {said}" if said else n.status.value


def _attention_id(n: Notification, reason: AttentionReason) -> str:
    """Short, and the same for the same decision: a decision is stored at most once per
    version of its notification (every write is version-checked), so the hooks, rebuilding
    the record from the committed log, name the row the store wrote."""
    key = f"{n.id}/{n.version}/{reason.value}/0"
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


def updates_in(events: list[Event]) -> list[AttentionUpdate]:
    """What the ``attention_updated`` entries among ``events`` write: each record's detail
    after its last added cause."""
    details = {
        e.data["attention_id"]: e.data["record_detail"]
        for e in events
        if e.kind is EventKind.ATTENTION_UPDATED
    }
    return [AttentionUpdate(attention_id, detail) for attention_id, detail in details.items()]
