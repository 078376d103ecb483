"""Durable state behind one narrow protocol: memory (tests), SQLite (default), PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from outreach._models import Attempt, Event, Medium, Notification, Status
from outreach.exceptions import ConfigurationError


@dataclass(frozen=True, slots=True)
class Change:
    """One notification's new state, written atomically with its log entries.

    ``notification.version`` is the version the change was computed from: the write is skipped
    if the stored version moved on. ``children`` (follow-ups) are inserted unless their key is
    taken; ``opt_outs`` are added to the suppression list. ``owner`` releases that runner's lease.
    ``attempts`` are the ones the change created or updated (as in ``notification``): the store
    indexes those, and only those, for the webhooks' look-ups.
    """

    notification: Notification
    events: Sequence[Event] = ()
    children: Sequence[Notification] = ()
    opt_outs: Sequence[tuple[Medium, str]] = ()
    owner: str | None = None
    attempts: Sequence[Attempt] = ()


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
    ) -> list[Notification]:
        """Lease up to ``limit`` notifications due at ``now`` that no live lease holds."""
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

    async def remember(self, key: str, now: datetime) -> bool:
        """True the first time ``key`` (a webhook event's own id) is seen, False after.

        Keys are kept at least as long as ``Settings.signature_max_age`` (the SQL stores keep
        them, never pruning): a batch replayed within the signature window must be recognised.
        """
        ...

    async def forget(self, key: str) -> None:
        """Forget ``key``: the event it names was not applied after all."""
        ...

    async def next_due(self) -> datetime | None:
        """The earliest scheduled time of any notification."""
        ...

    async def events(self, since: int = 0, limit: int = 1000) -> list[Event]:
        """Log entries with ``seq > since``, in order."""
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
