"""Records as statement parameters, and rows back as records: shared by the SQL stores.

Both SQL stores keep a notification's full record as JSON (``_codec``) beside the columns that
are queried, and its plan once per fingerprint in a ``plans`` table. What differs is how a time
becomes a column value (SQLite: epoch microseconds; PostgreSQL: ``timestamptz``), so an
:class:`Encoder` is built with that conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from outreach._models import Attention, Event, EventKind, Medium, Notification, Plan, Status
from outreach.exceptions import StoreError
from outreach.stores import Change, EventFilter
from outreach.stores._codec import dump_data, dump_notification, dump_state, load_notification

Params = dict[str, Any]
Stamp = Callable[[datetime | None], Any]


@dataclass(slots=True)
class Plans:
    """The plans of a batch of new notifications: fingerprints by plan object, and the
    snapshots not stored yet."""

    fingerprints: dict[int, str]
    new: dict[str, Plan]

    def rows(self) -> list[Params]:
        return [
            {"id": plan_id, "body": plan.model_dump_json()} for plan_id, plan in self.new.items()
        ]


@dataclass(slots=True)
class Encoded:
    """One change turned into statement parameters."""

    stored: Notification
    update: Params
    attempts: list[Params]
    events: list[Params]
    children: list[Params]
    opt_outs: list[Params]
    attentions: list[Params]
    attention_updates: list[Params]


Row = tuple[Any, ...]
"""A record as a store reads it: ``plan_id, body``, and its ``state`` where stored apart."""


@dataclass(slots=True)
class Rows:
    """Records read from a store (:data:`Row`), with the bodies of the plans they use that
    its cache has not parsed yet."""

    rows: Sequence[Row]
    plans: dict[str, str]


class Encoder:
    """Turns records into the parameters of the SQL stores' named statements. ``split``: a
    write of a change stores the record's changing part as ``state``, not the whole ``body``
    (the body, written at the start, stays)."""

    def __init__(self, stamp: Stamp, *, split: bool = False) -> None:
        self.stamp = stamp
        self._record = ("state", dump_state) if split else ("body", dump_notification)

    def update(self, change: Change, stored: Notification) -> Params:
        """The version-checked write of a change; ``stored`` is its state at the next version."""
        n = change.notification
        column, dump = self._record
        return {
            "status": n.status,
            "due_at": self.stamp(n.due_at),
            "new_version": stored.version,
            column: dump(stored),
            "owner": change.owner,
            "id": n.id,
            "version": n.version,
            "fence": change.fence,
        }

    def attempts(self, change: Change) -> list[Params]:
        """Index rows for the attempts a change lists.

        Only an attempt that went out can be looked up (by its provider id, or by who it was
        sent to and when), so one still ``sending`` gets its row when its send is recorded.
        """
        return [
            {
                "id": a.id,
                "notification_id": change.notification.id,
                "medium": a.medium,
                "address": a.address,
                "sender": a.sender,
                "provider_id": a.provider_id,
                "status": a.status,
                "sent_at": self.stamp(a.sent_at),
            }
            for a in change.attempts
            if a.sent_at is not None or a.provider_id is not None
        ]

    def opt_outs(self, change: Change) -> list[Params]:
        reported = self.stamp(change.notification.updated_at)
        return [
            {
                "medium": m,
                "address": a,
                "reason": "provider reported an opt-out",
                "created_at": reported,
            }
            for m, a in change.opt_outs
        ]

    def attentions(self, change: Change) -> list[Params]:
        return [
            {
                "id": a.id,
                "notification_id": a.notification_id,
                "recipient_id": a.recipient_id,
                "campaign": a.campaign,
                "reason": a.reason,
                "detail": a.detail,
                "opened_at": self.stamp(a.opened_at),
            }
            for a in change.attentions
        ]

    def events(self, events: Sequence[Event]) -> list[Params]:
        return [
            {
                "at": self.stamp(e.at),
                "notification_id": e.notification_id,
                "kind": e.kind,
                "attempt_id": e.attempt_id,
                "data": dump_data(e.data),
            }
            for e in events
        ]

    def insert(self, n: Notification, plan_id: str) -> Params:
        return {
            "id": n.id,
            "key": n.key,
            "campaign": n.campaign,
            "parent_id": n.parent_id,
            "status": n.status,
            "plan_id": plan_id,
            "due_at": self.stamp(n.due_at),
            "version": n.version,
            "created_at": self.stamp(n.created_at),
            "body": dump_notification(n),
        }

    def change(self, change: Change, fingerprints: Mapping[int, str]) -> Encoded:
        n = change.notification
        stored = n.model_copy(update={"version": n.version + 1})
        return Encoded(
            stored,
            self.update(change, stored),
            self.attempts(change),
            self.events(change.events),
            [self.insert(child, fingerprints[id(child.plan)]) for child in change.children],
            self.opt_outs(change),
            self.attentions(change),
            [
                {"id": u.attention_id, "detail": u.detail, "reason": u.reason}
                for u in change.attention_updates
            ],
        )


class PlanCache:
    """Parsed snapshots of committed plans, by fingerprint."""

    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}

    def missing(self, rows: Sequence[Row]) -> set[str]:
        """The plans ``rows`` use that are not parsed yet."""
        return {row[0] for row in rows if row[0] not in self.plans}

    def of(self, notifications: Sequence[Notification]) -> Plans:
        """Fingerprint each distinct plan once (equal plans are usually one object)."""
        fingerprints: dict[int, str] = {}
        new: dict[str, Plan] = {}
        for n in notifications:
            if id(n.plan) not in fingerprints:
                plan_id = fingerprints[id(n.plan)] = n.plan.fingerprint
                if plan_id not in self.plans:
                    new[plan_id] = n.plan
        return Plans(fingerprints, new)

    def decode(self, read: Rows, plans: dict[str, Plan] | None = None) -> list[Notification]:
        """Notifications from rows, parsing new plans into ``plans`` (the cache by default:
        pass a copy while the plans read may not be committed)."""
        plans = self.plans if plans is None else plans
        for plan_id, body in read.plans.items():
            plans.setdefault(plan_id, Plan.model_validate_json(body))
        try:
            return [load_notification(row[1], plans[row[0]], *row[2:]) for row in read.rows]
        except KeyError as missing:
            raise StoreError(f"plan snapshot {missing} is missing from the store") from None

    def committed(self, plans: Plans) -> None:
        """Cache plans once their transaction committed (never before: a rollback)."""
        self.plans.update(plans.new)


class NamedReads:
    """The look-ups both SQL stores make alike: a named query of ``plan_id, body`` rows, run
    by the store's own ``_read`` (plain rows: ``_tuples``), with times converted by its
    ``encoder``."""

    encoder: ClassVar[Encoder]

    async def _read(self, query: str, **params: Any) -> list[Notification]:
        raise NotImplementedError

    async def _tuples(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _read_one(self, query: str, **params: Any) -> Notification | None:
        found = await self._read(query, **params)
        return found[0] if found else None

    async def get(self, notification_id: str) -> Notification | None:
        return await self._read_one("get", id=notification_id)

    async def get_by_key(self, key: str) -> Notification | None:
        return await self._read_one("get_by_key", key=key)

    async def query(
        self, *, status: Status | None = None, campaign: str | None = None, limit: int = 1000
    ) -> list[Notification]:
        return await self._read(
            "query", status=None if status is None else str(status), campaign=campaign, limit=limit
        )

    async def unfinished_in_campaign(self, campaign: str, *, limit: int) -> list[Notification]:
        return await self._read("unfinished_in_campaign", campaign=campaign, limit=limit)

    async def campaign_counts(self, campaign: str) -> dict[tuple[Status, bool], int]:
        rows = await self._tuples("campaign_counts", campaign=campaign)
        return {(Status(status), bool(child)): count for status, child, count in rows}

    async def find_by_provider_id(self, provider_id: str) -> Notification | None:
        return await self._read_one("find_by_provider_id", provider_id=provider_id)

    async def latest_sent_to(
        self, medium: Medium, address: str, *, since: datetime, sender: str | None = None
    ) -> Notification | None:
        return await self._read_one(
            "latest_sent_to",
            medium=medium,
            address=address,
            since=self.encoder.stamp(since),
            sender=sender,
        )

    async def active_sent_to(
        self, medium: Medium, address: str, *, since: datetime, limit: int = 20
    ) -> list[Notification]:
        return await self._read(
            "active_sent_to",
            medium=medium,
            address=address,
            since=self.encoder.stamp(since),
            limit=limit,
        )


def filtered_events(where: EventFilter, kinds: Any) -> tuple[str, Params]:
    """The named query that reads the log entries ``where`` lets through by the best index,
    and its parameters (but ``since`` and ``limit``); ``kinds`` is the kinds filter as the
    store binds a list of strings (None: any kind)."""
    if where == EventFilter():
        return "events", {}
    if where.notification_id is not None:
        query = "events_of_notification"
    elif where.recipient_id is not None:
        query = "events_of_recipient"
    else:
        query = "events_of_kinds"
    params = {
        "notification_id": where.notification_id,
        "recipient_id": where.recipient_id,
        "kinds": kinds,
    }
    return query, params


def resolved_event(attention: Attention) -> Event:
    """The log entry of closing ``attention`` (just resolved)."""
    assert attention.resolved_at is not None
    return Event(
        at=attention.resolved_at,
        notification_id=attention.notification_id,
        kind=EventKind.ATTENTION_RESOLVED,
        data={"attention_id": attention.id, "by": attention.resolved_by, "note": attention.note},
    )


def taken_event(attention: Attention) -> Event:
    """The log entry of ``attention`` being taken (just now) by its owner."""
    assert attention.taken_at is not None
    return Event(
        at=attention.taken_at,
        notification_id=attention.notification_id,
        kind=EventKind.ATTENTION_TAKEN,
        data={"attention_id": attention.id, "by": attention.taken_by},
    )


def unanswered_event(attention: Attention) -> Event:
    """The log entry of paging for ``attention`` ending with nobody taking it."""
    assert attention.unanswered_at is not None
    return Event(
        at=attention.unanswered_at,
        notification_id=attention.notification_id,
        kind=EventKind.ATTENTION_UNANSWERED,
        data={"attention_id": attention.id},
    )
