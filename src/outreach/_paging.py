"""Paging: an attention record nobody takes within ``respond_within`` pages the staff.

A page is a notification like any other, to one staff member, with the paging plan (SMS,
email, a call...). Every staff member's page is created in the same transaction that opens
the record, first due at ``opened + respond_within``: the engine's own timers do the waiting,
so nothing is lost on a crash and no loop looks for records to page. Taking or resolving the
record cancels the pages still running (and a page claimed after its record was taken is
cancelled rather than sent). When the last page ends with nobody taking the record, that is
reported once; a worker's :class:`PageAudit` catches a report a stopped process missed.
Pages of one record share the campaign ``attention/<record id>`` (so they are found, and
cancelled, together) and have the key ``attention/<record id>/<staff id>``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from outreach._clock import Clock
from outreach._durations import Duration, DurationInput
from outreach._models import (
    Attention,
    AttentionReason,
    Event,
    EventKind,
    Many,
    Notification,
    Option,
    Plan,
    Recipient,
    _Config,
)
from outreach.exceptions import OutreachError
from outreach.stores import Change, Store

log = logging.getLogger("outreach.paging")

TAKE = Option(key="1", label="Take it", keywords=["take"])
"""The option a paging plan without options of its own offers: reply 1 or TAKE, press 1, or
open the link."""

PAGED = "paged_for"
"""The metadata key of a page naming the attention record it pages for."""


class Paging(_Config):
    """Page ``staff`` with ``plan`` when an attention record stays untaken ``respond_within``.

    Every staff member is paged at once (each with their own notification, in their own time
    zone, quiet hours and all unless the plan is ``urgent``); with ``stagger``, the next one in
    the list is paged that long after the one before, an escalation chain. Whoever answers a
    page first (any acknowledgement: a reply, a key, the link) takes the record, and the
    others' pages stop. A plan without options is given :data:`TAKE`. ``reasons`` limits
    paging to records opened for those reasons (``["handoff"]``: not for every customer a
    storm leaves unreached); None pages for every record.
    """

    plan: Plan
    staff: tuple[Recipient, ...] = Field(min_length=1)
    respond_within: Duration = timedelta(minutes=15)
    stagger: Duration | None = None
    reasons: tuple[AttentionReason, ...] | None = None

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            plan: Plan,
            staff: Many[Recipient],
            respond_within: DurationInput = ...,
            stagger: DurationInput | None = ...,
            reasons: Many[AttentionReason | str] | None = ...,
        ) -> None: ...

    @model_validator(mode="after")
    def _consistent(self) -> Paging:
        ids = [member.id for member in self.staff]
        if len(set(ids)) != len(ids):
            raise ValueError(f"staff ids must be unique (they end each page's key): {ids}")
        if self.respond_within < timedelta(0):
            raise ValueError(f"respond_within must not be negative, got {self.respond_within}")
        if self.stagger is not None and self.stagger < timedelta(0):
            raise ValueError(f"stagger must not be negative, got {self.stagger}")
        if self.plan.until != "acknowledged":
            raise ValueError(
                f"plan.until must be 'acknowledged' (a page ends when someone takes the record),"
                f" got {self.plan.until!r}"
            )
        if self.plan.follow_ups:
            raise ValueError(
                "plan.follow_ups: a page has no follow-ups (taking the record is the end of it)"
            )
        if not self.plan.options:
            object.__setattr__(self, "plan", self.plan.model_copy(update={"options": (TAKE,)}))
        return self

    def wants(self, reason: AttentionReason) -> bool:
        """Whether records opened for ``reason`` are paged for."""
        return self.reasons is None or reason in self.reasons

    def pages(
        self, attention: Attention, customer: Notification, now: datetime
    ) -> list[Notification]:
        """One page per staff member for ``attention`` (opened for ``customer``); none when
        its reason is not one of ``reasons``."""
        if not self.wants(attention.reason):
            return []
        first = attention.opened_at + self.respond_within
        stagger = self.stagger or timedelta(0)
        context = page_context(attention, customer)
        deadline = self.plan.deadline
        pages = []
        for i, member in enumerate(self.staff):
            due = first + i * stagger
            pages.append(
                Notification(
                    id=uuid.uuid4().hex,
                    key=f"{page_campaign(attention.id)}/{member.id}",
                    campaign=page_campaign(attention.id),
                    metadata={PAGED: attention.id},
                    recipient=member,
                    plan=self.plan,
                    context=context,
                    created_at=now,
                    updated_at=now,
                    due_at=due,
                    deadline_at=None if deadline is None else due + deadline,
                )
            )
        return pages


def page_campaign(attention_id: str) -> str:
    """The campaign the pages of one attention record share."""
    return f"attention/{attention_id}"


def paged_for(notification: Notification) -> str | None:
    """The attention record ``notification`` pages for, if it is a page."""
    attention_id = notification.metadata.get(PAGED)
    if isinstance(attention_id, str) and notification.campaign == page_campaign(attention_id):
        return attention_id
    return None


def page_context(attention: Attention, customer: Notification) -> dict[str, Any]:
    """What a page's templates see: the record (``attention.id``, ``.reason``, ``.detail``),
    the customer (``customer.id``, ``.phone``, ``.email``, ``.attributes``...), the context of
    the customer's notice (``notice``) and its campaign."""
    return {
        "attention": {
            "id": attention.id,
            "reason": attention.reason.value,
            "detail": attention.detail,
            "opened_at": attention.opened_at.isoformat(),
        },
        "customer": customer.recipient.model_dump(mode="json"),
        "notice": customer.context,
        "campaign": customer.campaign,
    }


def with_pages(change: Change, paging: Paging, now: datetime) -> Change:
    """``change`` with the pages of the attention records it opens (never for a page's own:
    a page nobody answers ends in ``on_attention_unanswered``, not in more paging).

    A cause added to an open record pages nobody again, but for one case: the record's reason
    is not one ``paging`` pages for, and the cause's is (a handoff after a reply nobody
    understood, with ``reasons=["handoff"]``). The record then takes the cause's reason, and
    its pages start from now."""
    customer = change.notification
    if paged_for(customer) is not None:
        return change
    change, late = _late_paged(change, paging)
    records = [*change.attentions, *late]
    if not records:
        return change
    pages = [page for a in records for page in paging.pages(a, customer, now)]
    created = [
        Event(
            at=now,
            notification_id=page.id,
            kind=EventKind.CREATED,
            data={"key": page.key, PAGED: page.metadata[PAGED]},
        )
        for page in pages
    ]
    return replace(change, children=[*change.children, *pages], events=[*change.events, *created])


def _late_paged(change: Change, paging: Paging) -> tuple[Change, list[Attention]]:
    """The records ``change`` adds a cause to that paging skipped and wants now, as they are
    with it; and ``change`` writing their new reason."""
    late: dict[str, Attention] = {}
    for event in change.events:
        if event.kind is not EventKind.ATTENTION_UPDATED:
            continue
        reason = AttentionReason(event.data["reason"])
        if paging.wants(AttentionReason(event.data["record_reason"])) or not paging.wants(reason):
            continue
        late[event.data["attention_id"]] = Attention(
            id=event.data["attention_id"],
            notification_id=change.notification.id,
            recipient_id=change.notification.recipient.id,
            campaign=change.notification.campaign,
            reason=reason,
            detail=event.data["record_detail"],
            opened_at=event.at,  # paging starts from now: respond_within counts from the cause
        )
    if not late:
        return change, []
    updates = [
        replace(u, reason=late[u.attention_id].reason) if u.attention_id in late else u
        for u in change.attention_updates
    ]
    return replace(change, attention_updates=updates), list(late.values())


async def settled(store: Store, batch: Sequence[Notification]) -> dict[str, str]:
    """Of the pages in ``batch``, those whose record someone already took or resolved, with
    why (a cancellation reason): a take whose process stopped before it cancelled the pages
    still stops them, the next time they are due."""
    pages = {n.id: attention_id for n in batch if (attention_id := paged_for(n)) is not None}
    if not pages:
        return {}
    customers = {str(n.context.get("customer", {}).get("id")) for n in batch if n.id in pages}
    owners = {}
    for customer in customers:
        for record in await store.attentions(recipient_id=customer, open=None):
            if record.taken_by is not None:
                owners[record.id] = f"taken by {record.taken_by}"
            elif record.resolved_by is not None:
                owners[record.id] = f"resolved by {record.resolved_by}"
    return {page: owners[a] for page, a in pages.items() if a in owners}


async def unanswered(store: Store, page: Notification, now: datetime) -> Attention | None:
    """After ``page`` ended unanswered: the record it paged for, if this was the last page
    still running and nobody took or resolved the record (marked so once, with its log
    entry, whichever process sees it first)."""
    attention_id = paged_for(page)
    if attention_id is None:
        return None
    if await store.unfinished_in_campaign(page_campaign(attention_id), limit=1):
        return None
    found = await store.unanswered_attention(attention_id, now=now)
    if found is None or found[1] is None:
        return None
    return found[0]


@dataclass
class PageAudit:
    """Every ``every`` at most, the records whose pages all ended with nobody taking them
    that the check after the last page's ending missed (its process stopped in between):
    marked unanswered now, once, so that nobody is silently left holding a customer."""

    store: Store
    clock: Clock
    every: timedelta = timedelta(minutes=1)
    limit: int = 100
    _next: datetime | None = field(default=None, init=False)

    async def audit_if_due(self) -> list[Attention]:
        """The records newly marked unanswered (none when the last audit is too recent). A
        store error is logged and skipped until the next audit."""
        now = self.clock.now()
        if self._next is not None and now < self._next:
            return []
        self._next = now + self.every
        marked = []
        try:
            for attention_id in await self.store.paged_out(limit=self.limit):
                found = await self.store.unanswered_attention(attention_id, now=now)
                if found is not None and found[1] is not None:
                    marked.append(found[0])
        except OutreachError:
            log.warning("the audit of pages nobody answered failed", exc_info=True)
        return marked
