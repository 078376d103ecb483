"""Durable state behind one narrow protocol: memory (tests), SQLite (default), PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from outreach._models import (
    Attempt,
    Attention,
    AttentionReason,
    Event,
    EventKind,
    Medium,
    Notification,
    Status,
)
from outreach.exceptions import ConfigurationError


@dataclass(frozen=True, slots=True)
class AttentionUpdate:
    """A later cause added to an open attention record: the record's ``detail`` with it, and
    its new ``reason`` when the cause changes it (None: unchanged)."""

    attention_id: str
    detail: str
    reason: AttentionReason | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One notification's new state, written atomically with its log entries.

    ``notification.version`` is the version the change was computed from: the write is skipped
    if the stored version moved on. ``children`` (follow-ups) are inserted unless their key is
    taken; ``opt_outs`` are added to the suppression list. ``owner`` releases that runner's lease.
    ``attempts`` are the ones the change created or updated (as in ``notification``): the store
    indexes those, and only those, for the webhooks' look-ups. ``fence`` is the fencing counter
    of the lease the write relies on (from :class:`Claimed`): the write is skipped, as for a
    stale version, once another claim has taken the notification over; ``None`` (an
    acknowledgement, a cancellation) needs no lease. ``attentions`` are opened with it (their
    ``attention_opened`` entries are among ``events``); ``attention_updates`` add to records
    that must still be open when it commits: a record resolved meanwhile fails the write, as a
    stale version does, so that the cause is decided again (and opens a record of its own).
    """

    notification: Notification
    events: Sequence[Event] = ()
    children: Sequence[Notification] = ()
    opt_outs: Sequence[tuple[Medium, str]] = ()
    owner: str | None = None
    attempts: Sequence[Attempt] = ()
    fence: int | None = None
    attentions: Sequence[Attention] = ()
    attention_updates: Sequence[AttentionUpdate] = ()


class Claimed(list[Notification]):
    """What :meth:`Store.claim_due` returns: the leased notifications, and per id the fencing
    counter (``lease_epoch``) its claim set, which the claimer's writes carry as
    :attr:`Change.fence`."""

    def __init__(self, notifications: Sequence[Notification], epochs: Mapping[str, int]) -> None:
        super().__init__(notifications)
        self.epochs = dict(epochs)


class Pruned(int):
    """What :meth:`Store.prune` returns: how many notifications it pruned, and in
    ``receipts`` how many webhook receipts it deleted."""

    receipts: int

    def __new__(cls, notifications: int, receipts: int = 0) -> Pruned:
        pruned = super().__new__(cls, notifications)
        pruned.receipts = receipts
        return pruned


@dataclass(frozen=True, slots=True)
class Limit:
    """One bucket a send is charged against: a row of the store's ``pacing`` table, kept by
    the generic cell rate algorithm (GCRA) as a "theoretical arrival time".

    ``scope`` and ``key`` name the row (``"rate:<channel>"`` and the sender, or
    ``"cap:<medium>"`` and the address); ``interval`` is the emission interval (``1 / rate`` for
    a channel, ``per`` for the per-recipient cap); ``burst`` sends may go back to back after a
    quiet spell; ``cost`` is what this send takes (SMS segments; negative gives units back).
    """

    scope: str
    key: str
    interval: timedelta
    burst: int = 1
    cost: float = 1.0

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0) or self.burst < 1:
            raise ConfigurationError(
                f"pacing {self.scope} {self.key!r}: the interval must be positive and the"
                f" burst at least 1 (got {self.interval} and {self.burst})"
            )

    @property
    def step(self) -> timedelta:
        """How far this send moves the bucket's theoretical arrival time."""
        return self.interval * self.cost

    @property
    def tolerance(self) -> timedelta:
        """How far ahead of the theoretical arrival time a send may start."""
        return self.interval * (self.burst - 1)


@dataclass(frozen=True, slots=True)
class Stuck:
    """A notification no runner will move on by itself, and why (for the sweeper)."""

    notification_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which log entries to read: of one notification, of one recipient's notifications,
    of some kinds only (None: no filter)."""

    notification_id: str | None = None
    recipient_id: str | None = None
    kinds: frozenset[EventKind] | None = None


class Store(Protocol):
    """What the client and the runner need from storage; nothing more."""

    async def open(self) -> None:
        """Connect and migrate the schema."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def create(
        self, notifications: Sequence[Notification], events: Sequence[Event]
    ) -> list[Notification]:
        """Insert new notifications; where a key is taken, return the stored one instead."""
        ...

    async def get(self, notification_id: str) -> Notification | None:
        """The notification with this id."""
        ...

    async def get_by_key(self, key: str) -> Notification | None:
        """The notification with this idempotency key."""
        ...

    async def query(
        self, *, status: Status | None = None, campaign: str | None = None, limit: int = 1000
    ) -> list[Notification]:
        """Notifications, oldest first, optionally filtered."""
        ...

    async def unfinished_in_campaign(self, campaign: str, *, limit: int) -> list[Notification]:
        """Up to ``limit`` pending or active notifications of ``campaign``, in any order: the
        next batch for a bulk cancel, cheap however large the campaign."""
        ...

    async def campaign_counts(self, campaign: str) -> dict[tuple[Status, bool], int]:
        """How many notifications of ``campaign`` have each status, by (status, whether it
        is a follow-up): counted by the store, not loaded."""
        ...

    async def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> Claimed:
        """Lease up to ``limit`` notifications due at ``now`` (or whose lease lapsed) that no
        live lease holds, bumping each one's fencing counter."""
        ...

    async def renew(self, leases: Mapping[str, int], *, owner: str, until: datetime) -> set[str]:
        """Extend ``owner``'s leases (notification id -> fencing counter) to ``until`` in one
        statement; the ids still held (a lease another claim took over is not renewed)."""
        ...

    async def release(self, notification_ids: Sequence[str], *, owner: str) -> int:
        """Give back ``owner``'s leases on these notifications, so another runner may claim
        them at once; how many it held."""
        ...

    async def save(self, changes: Sequence[Change]) -> list[Notification | None]:
        """Apply changes in one transaction; ``None`` where the version check failed."""
        ...

    async def find_by_provider_id(self, provider_id: str) -> Notification | None:
        """The notification one of whose attempts the provider knows by this id."""
        ...

    async def latest_sent_to(
        self, medium: Medium, address: str, *, since: datetime, sender: str | None = None
    ) -> Notification | None:
        """The notification of the most recent attempt sent to ``address`` since ``since``
        (from ``sender``, when both sides know it): where an inbound reply belongs."""
        ...

    async def active_sent_to(
        self, medium: Medium, address: str, *, since: datetime, limit: int = 20
    ) -> list[Notification]:
        """The pending or active notifications with an attempt sent to ``address`` since
        ``since``, the most recently sent first (at most ``limit``): a recipient's concurrent
        conversations, so each can be given its own sender and a reply lands on its own."""
        ...

    async def remember(self, key: str, now: datetime) -> bool:
        """True the first time ``key`` (a webhook event's own id) is seen, False after.

        Keys are kept at least as long as ``Settings.signature_max_age`` (:meth:`prune`
        deletes older ones): a batch replayed within the signature window must be recognised.
        """
        ...

    async def forget(self, key: str) -> None:
        """Forget ``key``: the event it names was not applied after all."""
        ...

    async def next_due(self) -> datetime | None:
        """The earliest scheduled time of any notification."""
        ...

    async def schema_version(self) -> int:
        """The newest migration applied: a cheap read that proves the store answers."""
        ...

    async def watch(self, heard: Callable[[], None]) -> None:
        """Until cancelled, call ``heard()`` whenever another process may have made work due
        sooner (a start, an acknowledgement, a cancellation). A store that cannot hear other
        processes returns at once: runners then poll it. Raising means it stopped hearing:
        the runner polls, and calls it again later."""
        ...

    async def prune(
        self,
        finished_before: datetime,
        *,
        receipts_before: datetime | None = None,
        batch: int = 500,
    ) -> Pruned:
        """Remove the personal data of notifications that finished before
        ``finished_before`` (``stores._prune`` says what is kept: what reports count), and
        the webhook receipts received before ``receipts_before`` (None: a replay window,
        25 h, before ``finished_before``; a caller passes no later time than its signature
        max age allows). How many notifications were pruned (each once) and receipts
        deleted, a batch per transaction."""
        ...

    async def sweep(self, now: datetime, *, lapsed_before: datetime, limit: int) -> list[Stuck]:
        """Up to ``limit`` notifications no runner will move on, each logged as a ``stuck``
        event: ``active`` with nothing scheduled and no live lease, or with an attempt
        ``sending`` whose lease ran out before ``lapsed_before`` without a takeover."""
        ...

    async def events(
        self, since: int = 0, limit: int = 1000, where: EventFilter | None = None
    ) -> list[Event]:
        """Log entries with ``seq > since``, in order, that ``where`` lets through; gap-free:
        an entry is only returned once no entry before it can still commit (``seq`` is a
        cursor, increasing, not dense)."""
        ...

    async def pace(
        self, sends: Sequence[Sequence[Limit]], *, now: datetime | None, horizon: timedelta
    ) -> list[timedelta]:
        """Per send (the limits it is charged against, in order), the delay from ``now`` after
        which it may start, shared by every process on the store.

        A send whose delay is at most ``horizon`` is charged against all its limits for a
        start at that delay; a longer one is charged nothing (defer the step to then and ask
        again). ``now=None`` uses the store's own clock (PostgreSQL's, so hosts whose clocks
        disagree still pace alike); pass the caller's time for a virtual clock.
        """
        ...

    async def charge(self, limits: Sequence[Limit]) -> None:
        """Move each limit's bucket by its ``cost`` (the extra segments of a long SMS; a
        negative cost gives back the place of a send that reached no one)."""
        ...

    async def attentions(
        self,
        *,
        campaign: str | None = None,
        open: bool | None = True,
        recipient_id: str | None = None,
        limit: int = 1000,
    ) -> list[Attention]:
        """Attention records, oldest first: of a campaign, of a recipient, open (True),
        resolved (False) or both (None)."""
        ...

    async def resolve_attention(
        self, attention_id: str, *, by: str, note: str | None, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        """Close an attention record and log it, in one transaction; None if there is no such
        record. Idempotent: resolving a resolved record changes nothing and logs nothing (the
        event is None)."""
        ...

    async def take_attention(
        self, attention_id: str, *, by: str, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        """Give an open attention record nobody has taken to ``by`` and log it, in one
        transaction; None if there is no such record. Of concurrent takers exactly one wins:
        for the others (and for a taken or resolved record) nothing changes and the event is
        None, and the record returned says who has it."""
        ...

    async def unanswered_attention(
        self, attention_id: str, *, now: datetime
    ) -> tuple[Attention, Event | None] | None:
        """Mark, once, that paging for an open record nobody took has ended, and log it; the
        event is None when it was already marked, taken or resolved (None: no such record)."""
        ...

    async def paged_out(self, *, limit: int) -> list[str]:
        """Up to ``limit`` ids of open records nobody took whose pages (the notifications of
        campaign ``attention/<id>``) have all ended, not yet marked unanswered."""
        ...

    async def opted_out(self, addresses: Sequence[tuple[Medium, str]]) -> set[tuple[Medium, str]]:
        """Which of these (medium, address) pairs are suppressed."""
        ...

    async def suppress(self, medium: Medium, address: str, reason: str, now: datetime) -> None:
        """Add an address to the suppression list."""
        ...

    async def unsuppress(self, medium: Medium, address: str) -> None:
        """Lift a suppression."""
        ...


@runtime_checkable
class OpensExisting(Protocol):
    """A store that can be opened without being created: what commands that only work on
    stored data use, so that a mistyped path or an un-migrated database is an error rather
    than a new, empty store (SQLite's and PostgreSQL's; ``memory://`` is new every time)."""

    async def open_existing(self) -> None:
        """Connect to a store that is there and at the current schema version, creating and
        migrating nothing; ``ConfigurationError`` (saying what to run) otherwise. A later
        ``open()`` does nothing."""
        ...


def open_store(url: str) -> Store:
    """The store a URL names: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs.db``,
    ``postgresql://user@host/db`` (or ``postgres://``; needs the ``postgres`` extra)."""
    if url == "memory://" or url.startswith("memory:"):
        from outreach.stores.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:///"):
        from outreach.stores.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigurationError(f"store URL {url!r} names no file")
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from outreach.stores.postgres import PostgresStore
        except ImportError as missing:
            raise ConfigurationError(
                f"the PostgreSQL store needs psycopg ({missing}): pip install 'outreach[postgres]'"
            ) from missing
        return PostgresStore(url)
    raise ConfigurationError(
        f"unknown store URL {url!r}; use memory://, sqlite:///relative.db, sqlite:////abs.db"
        " or postgresql://user@host/db"
    )
