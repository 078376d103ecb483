"""Which of a channel's numbers a text goes from, so a reply lands on the notice it answers.

A reply is matched to the notification last sent from the number it was sent *to*
(``Store.latest_sent_to``). With one number, a customer with two notices at once (outbound and
return flight) cannot say which one "2" answers. With several (``TwilioSMS(senders=[...])``),
each of a recipient's concurrent notifications keeps a number of its own:

- a notification already texted from one of them keeps it (its earlier texts' replies must
  still match);
- otherwise it takes the first number none of the recipient's other active notifications uses;
- when all are taken, the one they used longest ago (the reply then falls back to the most
  recent notice, and its confirmation names it).
"""

from __future__ import annotations

from datetime import datetime

from outreach._models import Attempt, Notification
from outreach.stores import Store


async def choose_sender(
    store: Store,
    notification: Notification,
    attempt: Attempt,
    senders: tuple[str, ...],
    now: datetime,
) -> str | None:
    """The number ``attempt`` should go from, or None to leave it to the channel."""
    if len(senders) < 2 or attempt.medium is None or attempt.address is None:
        return None
    mine = [
        a.sender
        for a in notification.attempts
        if a.medium is attempt.medium and a.address == attempt.address and a.sender in senders
    ]
    if mine:
        return mine[-1]
    since = now - notification.plan.grace
    others = await store.active_sent_to(attempt.medium, attempt.address, since=since)
    used: dict[str, None] = {}  # newest first
    for other in others:
        if other.id == notification.id:
            continue
        for a in sorted(other.attempts, key=lambda a: a.sent_at or a.created_at, reverse=True):
            if a.medium is attempt.medium and a.address == attempt.address and a.sender:
                used.setdefault(a.sender)
                break
    free = [sender for sender in senders if sender not in used]
    if free:
        return free[0]
    return next(sender for sender in reversed(used) if sender in senders)
