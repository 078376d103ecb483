"""What ``outreach db prune`` keeps of a finished notification: what reports count, no one's
personal data.

A stored record (the JSON body both SQL stores share) loses its recipient's addresses, time
zone and attributes, its template context and its attempts' addresses; it keeps the
recipient's id (the caller's own reference, which reports list), the statuses, times, steps,
choices and errors. Replies in the event log lose their text (``prune_replies`` in each
store's ``queries.sql``). The record's version moves on, so a writer holding the old copy
cannot put the data back.

Webhook receipts (the keys that de-duplicate provider callbacks) go too, once older than the
replay window: a callback the webhooks still accept (a signature's max age) is still
recognised as seen.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from outreach._models import Status

FINISHED = tuple(status.value for status in Status if status.is_terminal)
"""The statuses a notification can be pruned in."""

REPLAY_WINDOW = timedelta(hours=25)
"""How long receipts are kept at least when the caller names no cutoff: the default
``Settings.signature_max_age``."""


def receipts_cutoff(finished_before: datetime, receipts_before: datetime | None) -> datetime:
    """Before when webhook receipts are deleted: ``receipts_before`` as given, else
    ``finished_before`` less :data:`REPLAY_WINDOW` (never younger than the window needs)."""
    return finished_before - REPLAY_WINDOW if receipts_before is None else receipts_before


def anonymized(body: str | dict[str, Any]) -> str:
    """A stored notification record (JSON, or its fields) without personal data, one
    version on."""
    data: dict[str, Any] = json.loads(body) if isinstance(body, str) else dict(body)
    data["version"] = data.get("version", 0) + 1
    recipient = data.get("recipient") or {}
    data["recipient"] = {"id": recipient.get("id", ""), "locale": recipient.get("locale", "en")}
    data["context"] = {}
    for attempt in data.get("attempts") or []:
        attempt["address"] = None
    return json.dumps(data, separators=(",", ":"))
