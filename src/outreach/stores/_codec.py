"""Turning records into column values and back, shared by the SQL stores."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from pydantic import create_model
from pydantic_core import from_json, to_json

from outreach._models import (
    Attention,
    AttentionReason,
    Event,
    EventKind,
    Notification,
    Plan,
    Recipient,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(when: datetime | None) -> int | None:
    """Exact epoch microseconds (no float rounding), for indexed time columns."""
    return None if when is None else (when - EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot store {type(value).__name__} in an event")


# One encoder for every event: ``json.dumps`` with options builds a new one per call.
_EVENT_DATA = json.JSONEncoder(default=_default, separators=(",", ":"))


def dump_data(data: dict[str, Any]) -> str:
    return _EVENT_DATA.encode(data)


_INF_NAN = Notification.model_config.get("ser_json_inf_nan", "null")


def as_stored(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a notification's context) as a store gives it back: encoded by pydantic's
    serializer as :func:`dump_notification` encodes it, and parsed as :func:`load_notification`
    parses it. A datetime or Decimal comes back a string, a dict's int keys strings, tuples and
    sets lists. Raises ``PydanticSerializationError`` for a value that is not JSON data.
    (``from_json`` reads pydantic's output exactly as ``json.loads`` does, five times faster.)"""
    loaded: dict[str, Any] = from_json(to_json(data, inf_nan_mode=_INF_NAN))
    return loaded


def dump_notification(notification: Notification) -> str:
    """The record without its plan, which is stored once per fingerprint."""
    return notification.model_dump_json(exclude={"plan"})


GIVEN_AT_START = frozenset(
    {"id", "key", "campaign", "metadata", "parent_id", "recipient", "context", "created_at"}
)
"""The fields of a record no transition changes (prune aside): its body, written once."""
_NOT_STATE = {"plan", *GIVEN_AT_START}


def dump_state(notification: Notification) -> str:
    """What a transition may have changed of a record: all but :data:`GIVEN_AT_START` (and
    the plan), laid over the stored body when read (:func:`load_notification`)."""
    return notification.model_dump_json(exclude=_NOT_STATE)


def merged(body: str, state: str | None) -> dict[str, Any]:
    """A record's fields: its body, with its state (when it has one) laid over it."""
    data: dict[str, Any] = from_json(body)  # what json.loads gives, five times faster
    if state is not None:
        data.update(from_json(state))
    return data


_STORED_FIELDS = create_model(
    "StoredNotification",
    __base__=Notification,
    plan=(Plan | None, None),
    recipient=(dict[str, Any], ...),
)
"""A notification's stored fields, but its plan (stored apart, parsed once per snapshot) and
its recipient (validated when it was started: re-checking every phone and email on every read
would cost more than the rest of the load together)."""


def _laid_over(body: str, state: str | None) -> str:
    """One JSON object of ``body``'s keys, then ``state``'s (both JSON objects)."""
    if state is None or state.strip() == "{}":
        return body
    return f"{body.rstrip()[:-1]},{state.lstrip()[1:]}"


def load_notification(body: str, plan: Plan, state: str | None = None) -> Notification:
    """A stored record (``state``: its changing part, stored apart), parsed in one pass: the
    state's keys follow the body's, and the last of a repeated key wins. What was checked
    when it was started (its recipient, its plan) is not checked again."""
    fields = _STORED_FIELDS.model_validate_json(_laid_over(body, state))
    values = fields.__dict__
    values["recipient"] = Recipient.model_construct(**values["recipient"])
    values["plan"] = plan
    notification = Notification.__new__(Notification)
    object.__setattr__(notification, "__dict__", values)
    object.__setattr__(notification, "__pydantic_fields_set__", fields.model_fields_set | {"plan"})
    object.__setattr__(notification, "__pydantic_extra__", None)
    object.__setattr__(notification, "__pydantic_private__", None)
    return notification


def load_event(
    seq: int, at: int | datetime, notification_id: str, kind: str, attempt_id: str | None, data: str
) -> Event:
    return Event(
        seq=seq,
        at=at if isinstance(at, datetime) else from_micros(at),
        notification_id=notification_id,
        kind=EventKind(kind),
        attempt_id=attempt_id,
        data=json.loads(data),
    )


def load_attention(row: tuple[Any, ...], when: Callable[[Any], datetime]) -> Attention:
    """An attention record from its row (``attentions`` column order); ``when`` reads the
    store's time columns."""
    id_, notification_id, recipient_id, campaign, reason, detail, opened, resolved, by, note = row[
        :10
    ]
    taken_by, taken, unanswered = row[10:]
    return Attention(
        id=id_,
        notification_id=notification_id,
        recipient_id=recipient_id,
        campaign=campaign,
        reason=AttentionReason(reason),
        detail=detail,
        opened_at=when(opened),
        resolved_at=None if resolved is None else when(resolved),
        resolved_by=by,
        note=note,
        taken_by=taken_by,
        taken_at=None if taken is None else when(taken),
        unanswered_at=None if unanswered is None else when(unanswered),
    )
