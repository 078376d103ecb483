"""How a notification turned out, in words a support agent can act on.

:func:`describe` is the one place outcomes are put into words: attention records, campaign
reports, ``outreach status`` and the demo all use it (or its parts, :func:`never_reached` and
:func:`attempt_reason`), so an opt-out is never reported as "no answer" in one place and as
an opt-out in another.
"""

from __future__ import annotations

import re

from outreach._engine import quoted
from outreach._models import Attempt, AttemptStatus, Event, EventKind, Notification, Status

__all__ = ["attempt_reason", "describe", "describe_event", "never_reached"]

_TWILIO_CODES = {
    "21211": "not a valid number",
    "21610": "opted out (STOP)",
    "21614": "a landline",
    "30003": "unreachable",
    "30005": "unknown number",
    "30006": "a landline",
}
_CODE = re.compile(r"\b(2\d{4}|3\d{4})\b")
_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*(?:Error|Exception|Limited|Conflict): ")
_BOUNCE = re.compile(r"^(bounce|blocked|dropped)\b[^:]*:?\s*")
_REPLY_QUOTED = 40  # characters of a reply quoted in a one-line outcome
_DETAIL = 160  # characters of a provider's own words kept in a one-line outcome


def _cut(text: str, limit: int = _DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def attempt_reason(attempt: Attempt) -> str:
    """A few words on what became of one attempt that did not reach anyone: its channel,
    then the provider's reason (a landline, a bounce with its text, voicemail, no answer,
    an opt-out) or the error's message (never the exception's class name)."""
    error = _CLASS_NAME.sub("", attempt.error or "").strip()
    if not error:
        return f"{attempt.channel}: {attempt.status.value}"
    code = _CODE.search(error)
    if code and code.group(1) in _TWILIO_CODES:
        return f"{attempt.channel}: {_TWILIO_CODES[code.group(1)]}"
    if bounce := _BOUNCE.match(error):
        said = error[bounce.end() :].strip()
        return f"{attempt.channel}: bounced" + (f" ({_cut(said)})" if said else "")
    if error.startswith("the recipient opted out"):
        return f"{attempt.channel}: opted out"
    return f"{attempt.channel}: {_cut(error)}"


def never_reached(notification: Notification) -> str:
    """Why a customer was not reached, in a line: a reply not understood, then each
    attempt's reason, then the channels that got no answer."""
    reasons = []
    if notification.last_reply is not None:
        reasons.append(f"replied, not understood: {quoted(notification.last_reply, _REPLY_QUOTED)}")
    reasons += [
        attempt_reason(a)
        for a in notification.attempts
        if a.error or a.status in (AttemptStatus.FAILED, AttemptStatus.UNDELIVERED)
    ]
    answered = {a.channel for a in notification.attempts if a.status is AttemptStatus.ENGAGED}
    silent = list(
        dict.fromkeys(
            a.channel
            for a in notification.attempts
            if a.sent_at is not None and not a.error and a.channel not in answered
        )
    )
    if silent:
        reasons.append(f"no answer to {', '.join(silent)}")
    return "; ".join(dict.fromkeys(reasons)) or "nothing could be sent"


def describe(notification: Notification) -> str:
    """The outcome of one notification in a line: how it was acknowledged (and what was
    chosen), what reached the customer (``delivered: email delivered``), or why it never
    reached them, or where it stands."""
    n = notification
    if n.status is Status.ACKNOWLEDGED:
        said = f"acknowledged by {n.acknowledged_via or 'api'}"
        option = None if n.choice is None else n.plan.option(n.choice)
        if option is not None:
            said += f", chose {option.key}: {option.label}"
            if option.handoff:
                said += " (a person takes over)"
        elif n.choice is not None:
            said += f", chose {n.choice}"
        return said
    if n.status in (Status.DELIVERED, Status.ENGAGED):
        return f"{n.status.value}: {n.reached_by or 'reached'}"
    if n.status in (Status.EXHAUSTED, Status.EXPIRED, Status.FAILED):
        return f"{n.status.value}: {never_reached(n)}"
    if n.status is Status.CANCELLED:
        return "cancelled"
    if n.last_reply is not None:
        return f"{n.status.value}; replied, not understood: {quoted(n.last_reply, _REPLY_QUOTED)}"
    return n.status.value


def describe_event(event: Event) -> str:
    """One log entry in a line, as a timeline shows it (``outreach status --recipient``)."""
    data = event.data
    kind = event.kind
    if kind is EventKind.ATTEMPT:
        status = data.get("status")
        error = _CLASS_NAME.sub("", data.get("error") or "")
        said = f"{data.get('channel', 'attempt')} {status}"
        return f"{said}: {_cut(error)}" if error else said
    if kind is EventKind.ATTEMPT_STATUS:
        note = data.get("error")
        return f"attempt {data.get('status')}" + (f": {_cut(note)}" if note else "")
    if kind is EventKind.DEFERRED:
        return f"held back ({data.get('reason')}) until {data.get('until')}"
    if kind in (EventKind.ACKNOWLEDGED, EventKind.REPLY_RECORDED):
        said = "acknowledged" if kind is EventKind.ACKNOWLEDGED else "answered after the end"
        choice = data.get("choice")
        return f"{said} via {data.get('via')}" + (f", chose {choice}" if choice else "")
    if kind in (EventKind.DELIVERED, EventKind.ENGAGED):
        after = data.get("after")
        said = f"{kind.value}: {data.get('reached_by')}"
        return f"{said} (after {after})" if after else said
    if kind is EventKind.REPLY:
        return f"replied via {data.get('via')}: {quoted(data.get('text') or '')}"
    if kind is EventKind.FOLLOW_UP_STARTED:
        return f"follow-up {data.get('name')!r} scheduled for {data.get('due')}"
    if kind is EventKind.OPTED_OUT:
        return f"opted out of {data.get('medium')}"
    if kind is EventKind.CREATED:
        return "follow-up created" if data.get("parent_id") else "created"
    if kind is EventKind.ATTENTION_OPENED:
        return (
            f"needs a person ({data.get('reason')}): {data.get('detail')} "
            f"[attention {data.get('attention_id')}]"
        )
    if kind is EventKind.ATTENTION_UPDATED:
        return (
            f"needs a person, again ({data.get('reason')}): {data.get('detail')} "
            f"[added to attention {data.get('attention_id')}]"
        )
    if kind is EventKind.ATTENTION_RESOLVED:
        note = data.get("note")
        said = f"attention {data.get('attention_id')} resolved by {data.get('by')}"
        return f"{said}: {note}" if note else said
    if kind is EventKind.ATTENTION_TAKEN:
        return f"attention {data.get('attention_id')} taken by {data.get('by')}"
    if kind is EventKind.ATTENTION_UNANSWERED:
        return f"attention {data.get('attention_id')}: paged, nobody took it"
    reason = data.get("reason")
    return f"{kind.value}: {reason}" if reason else kind.value
