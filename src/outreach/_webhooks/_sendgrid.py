"""SendGrid's Event Webhook: delivery, bounces, engagement and unsubscribes, in batches.

Events are matched to attempts by the ``custom_args`` the email adapter sends, which SendGrid
merges into each event as top-level keys (``outreach_attempt_id``,
``outreach_notification_id``), and de-duplicated on ``sg_event_id``: SendGrid delivers each
event more than once.

Each event of a batch stands alone: one that is malformed is logged and skipped, and the others
are applied. Only a failure of the store itself answers 5xx, so that SendGrid retries the
batch; its events already applied are recognised by their ``sg_event_id`` then.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from outreach._engine import notification_id_of
from outreach._models import AttemptStatus, Medium, Notification
from outreach._redact import mask
from outreach._webhooks._common import EVENTS_LIMIT, Ctx, Rejected, read_body
from outreach.exceptions import NotFound, OutreachError, StoreError

log = logging.getLogger("outreach.webhooks")

ATTEMPT_ARG: Final = "outreach_attempt_id"
NOTIFICATION_ARG: Final = "outreach_notification_id"

_STATUS: Final[Mapping[str, AttemptStatus]] = {
    "delivered": AttemptStatus.DELIVERED,
    "open": AttemptStatus.ENGAGED,  # engagement, never an acknowledgement
    "click": AttemptStatus.ENGAGED,
    "bounce": AttemptStatus.UNDELIVERED,  # includes type=blocked
    "dropped": AttemptStatus.FAILED,  # SendGrid never tried to deliver it
}
_OPT_OUT: Final = frozenset({"spamreport", "unsubscribe", "group_unsubscribe"})
_EVENT_ERRORS: Final = (ValueError, TypeError, LookupError, OutreachError)
"""What one malformed event can raise (a StoreError is handled apart: the store failed)."""


def _storable(value: Any) -> Any:
    """``value`` (parsed JSON) with every lone surrogate replaced by U+FFFD.

    JSON may escape half a surrogate pair (``"\\ud83d"``): valid JSON, but text that cannot be
    encoded as UTF-8, which neither the store nor a log file can take.
    """
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _reason(event: Mapping[str, Any]) -> str | None:
    """``"bounce (blocked): 550 5.7.1 ... [5.7.1]"``: what a bounce or drop says."""
    kind = _text(event.get("event"))
    if kind not in ("bounce", "dropped"):
        return None
    subtype = _text(event.get("type"))
    parts = [f"{kind} ({subtype})" if subtype and subtype != kind else kind]
    reason = _text(event.get("reason"))
    if reason:
        parts.append(reason[:500])
    status = _text(event.get("status"))
    if status:
        parts.append(f"[{status}]")
    classification = _text(event.get("bounce_classification"))
    if classification:
        parts.append(f"({classification})")
    return parts[0] + (": " + " ".join(parts[1:]) if len(parts) > 1 else "")


async def events(ctx: Ctx, request: Request) -> Response:
    """``POST /sendgrid/events``: verify the whole batch, then apply each event once."""
    body = await read_body(request, EVENTS_LIMIT)
    if ctx.sendgrid is not None:
        ctx.sendgrid.check(request, body)
    try:
        batch = json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        raise Rejected(400, "malformed JSON") from None
    if not isinstance(batch, list) or not all(isinstance(event, dict) for event in batch):
        raise Rejected(400, "expected a JSON array of event objects")
    for event in batch:
        event = _storable(event)
        try:
            await _apply(ctx, event)
        except StoreError:
            raise  # the store failed, not this event: 5xx, and SendGrid retries the batch
        except _EVENT_ERRORS as exc:
            log.warning(
                "skipped a malformed SendGrid %r event (sg_event_id %r) for %s: %s",
                _text(event.get("event"))[:40],
                _text(event.get("sg_event_id"))[:100],
                mask(_text(event.get("email"))),
                type(exc).__name__,
            )
            log.debug("the skipped SendGrid event's error", exc_info=True)
    return Response(status_code=200)


async def _apply(ctx: Ctx, event: Mapping[str, Any]) -> None:
    client = ctx.client
    kind = _text(event.get("event"))
    event_id = _text(event.get("sg_event_id"))
    if event_id and not await ctx.first_sighting(f"sendgrid:{event_id}"):
        return
    attempt_id = _text(event.get(ATTEMPT_ARG)) or None
    notification = None
    if attempt_id is None or kind in _OPT_OUT:
        notification = await _notification(ctx, attempt_id, _text(event.get(NOTIFICATION_ARG)))
    if attempt_id is None and notification is not None:
        emails = [a for a in notification.attempts if a.medium is Medium.EMAIL and a.sent_at]
        attempt_id = emails[-1].id if emails else None
    if kind in _OPT_OUT:
        # Our own spelling of the address first: SendGrid may report it in another case.
        attempt = notification.attempt(attempt_id) if notification and attempt_id else None
        ours = (attempt.address if attempt else None) or (
            notification.recipient.email if notification else None
        )
        theirs = _text(event.get("email"))
        for email in dict.fromkeys(a for a in (ours, theirs) if a):
            await client.opt_out(
                Medium.EMAIL,
                email,
                reason=f"sendgrid {kind}",
                notification_id=None if notification is None else notification.id,
            )
        log.info("email opt-out (%s) for %s", kind, mask(ours or theirs))
        return
    status = _STATUS.get(kind)
    if status is None:  # processed, deferred, group_resubscribe, account events...
        return
    error = _reason(event)
    if attempt_id is not None:
        updated = await ctx.inbound.update_attempt(status, attempt_id=attempt_id, error=error)
    elif message_id := _text(event.get("sg_message_id")).split(".", 1)[0]:
        updated = await ctx.inbound.update_attempt(status, provider_id=message_id, error=error)
    else:
        updated = None
    if updated is None:
        log.debug("SendGrid %s event for no known attempt", kind)


async def _notification(
    ctx: Ctx, attempt_id: str | None, notification_id: str
) -> Notification | None:
    """The notification an event's custom args name (by its own id or its attempt's)."""
    notification_id = notification_id or notification_id_of(attempt_id or "")
    if not notification_id:
        return None
    try:
        return await ctx.client.get(notification_id)
    except NotFound:
        return None
