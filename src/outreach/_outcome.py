"""Why a notification did not reach its recipient, in words a support agent can act on."""

from __future__ import annotations

import re

from outreach._models import Attempt, AttemptStatus, Notification

_TWILIO_CODES = {
    "21211": "not a valid number",
    "21610": "opted out",
    "21614": "a landline",
    "30003": "unreachable",
    "30005": "unknown number",
    "30006": "a landline",
}


def short_reason(attempt: Attempt) -> str:
    """A few words on what went wrong with one attempt."""
    error = attempt.error or attempt.status.value
    code = re.search(r"\b(2\d{4}|3\d{4})\b", error)
    if code and code.group(1) in _TWILIO_CODES:
        return f"{attempt.channel}: {_TWILIO_CODES[code.group(1)]}"
    if error.startswith(("bounce", "blocked", "dropped")):
        return f"{attempt.channel}: bounced"
    return f"{attempt.channel}: {error.split(':')[0]}"


def never_reached(notification: Notification) -> str:
    """Why a passenger was not reached, in a line."""
    reasons = [
        short_reason(a)
        for a in notification.attempts
        if a.error or a.status in (AttemptStatus.FAILED, AttemptStatus.UNDELIVERED)
    ]
    answered = {a.channel for a in notification.attempts if a.status is AttemptStatus.ENGAGED}
    silent = [
        a.channel
        for a in notification.attempts
        if a.sent_at is not None and not a.error and a.channel not in answered
    ]
    if silent:
        reasons.append(f"no answer to {', '.join(silent)}")
    return "; ".join(reasons) or "nothing could be sent"
