"""Callbacks into the application, called after the change they report is committed."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from outreach._alerts import ChannelAlert
from outreach._attentions import attention_of
from outreach._models import Attempt, AttemptStatus, Attention, Event, EventKind, Notification

log = logging.getLogger("outreach.hooks")

NotificationHook = Callable[[Notification], Awaitable[None] | None]
AttemptHook = Callable[[Notification, Attempt], Awaitable[None] | None]
ChannelErrorHook = Callable[[str, Exception], Awaitable[None] | None]
ChannelHook = Callable[[str], Awaitable[None] | None]
AlertHook = Callable[[ChannelAlert], Awaitable[None] | None]
AttentionHook = Callable[[Attention], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Hooks:
    """Optional callbacks, sync or async. A hook that raises is logged and otherwise ignored:
    the change it reports is already stored, and ``AsyncClient.events`` has it at least once.

    Every terminal status has its hook: ``on_acknowledged``, ``on_delivered``,
    ``on_engaged``, ``on_exhausted``, ``on_expired``, ``on_failed`` and ``on_cancelled``, each
    called once per ending (an acknowledgement after an ending, within the grace period, calls
    ``on_acknowledged`` too).
    """

    on_acknowledged: NotificationHook | None = None
    on_delivered: NotificationHook | None = None
    """A plan with ``until="delivered"`` reached the customer (``Notification.reached_by``)."""
    on_engaged: NotificationHook | None = None
    """A plan with ``until="engaged"`` reached the customer (``Notification.reached_by``)."""
    on_exhausted: NotificationHook | None = None
    on_expired: NotificationHook | None = None
    on_failed: NotificationHook | None = None
    on_cancelled: NotificationHook | None = None
    on_attention: AttentionHook | None = None
    """An attention record was opened: a person should act (``AsyncClient.attention``)."""
    on_attention_resolved: AttentionHook | None = None
    """Someone resolved an attention record (``AsyncClient.resolve``)."""
    on_attention_taken: AttentionHook | None = None
    """Someone took an attention record (``AsyncClient.take``, or answering a page)."""
    on_attention_unanswered: AttentionHook | None = None
    """Every page for an attention record ended and nobody took it (see ``Paging``)."""
    on_attempt: AttemptHook | None = None
    on_channel_error: ChannelErrorHook | None = None
    """A configuration error switched a channel off (once per switch-off)."""
    on_channel_restored: ChannelHook | None = None
    """A send went through on a channel that was switched off: it is back on."""
    on_channel_alert: AlertHook | None = None
    """One kind of failure spiked on a channel (once per episode; see ``AlertThresholds``)."""
    on_channel_alert_cleared: AlertHook | None = None
    """A spike reported by ``on_channel_alert`` is over: that failure's share fell back."""

    async def after_commit(self, notification: Notification, events: Sequence[Event]) -> None:
        """Fire the hooks that ``events`` (just committed for ``notification``) call for."""
        endings = {
            EventKind.ACKNOWLEDGED: self.on_acknowledged,
            EventKind.DELIVERED: self.on_delivered,
            EventKind.ENGAGED: self.on_engaged,
            EventKind.EXHAUSTED: self.on_exhausted,
            EventKind.EXPIRED: self.on_expired,
            EventKind.FAILED: self.on_failed,
            EventKind.CANCELLED: self.on_cancelled,
        }
        for event in events:
            if event.kind in endings:
                await _call(endings[event.kind], notification)
            elif event.kind is EventKind.ATTENTION_OPENED:
                await _call(self.on_attention, attention_of(event, notification))
            elif (
                event.kind is EventKind.ATTEMPT
                and event.data.get("status") != AttemptStatus.SENDING
            ):
                attempt = notification.attempt(event.attempt_id or "")
                if attempt is not None:
                    await _call(self.on_attempt, notification, attempt)

    async def attention_resolved(self, attention: Attention) -> None:
        await _call(self.on_attention_resolved, attention)

    async def attention_taken(self, attention: Attention) -> None:
        await _call(self.on_attention_taken, attention)

    async def attention_unanswered(self, attention: Attention) -> None:
        await _call(self.on_attention_unanswered, attention)

    async def channel_error(self, channel: str, error: Exception) -> None:
        await _call(self.on_channel_error, channel, error)

    async def channel_restored(self, channel: str) -> None:
        await _call(self.on_channel_restored, channel)

    async def channel_alert(self, alert: ChannelAlert) -> None:
        hook = self.on_channel_alert_cleared if alert.cleared else self.on_channel_alert
        await _call(hook, alert)


async def _call(hook: Callable[..., Any] | None, *args: Any) -> None:
    if hook is None:
        return
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception(
            "hook %s failed; the change it reports is stored", getattr(hook, "__name__", hook)
        )
