"""What the webhooks need from the client, and users do not.

Match a reply to the notification it answers, apply a provider's report on an attempt, render
a call's script again, read a signed link and de-duplicate provider callbacks. The webhooks app
reaches it as ``client.inbound``; ``AsyncClient`` keeps the methods users call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from outreach._clock import Clock
from outreach._engine import Input, Reply, StatusUpdate, notification_id_of
from outreach._messages import Messages
from outreach._models import AttemptStatus, Medium, Notification
from outreach._paging import paged_for
from outreach._settings import Settings
from outreach._tokens import TokenClaims
from outreach.channels import Message
from outreach.exceptions import NotFound, TemplateError
from outreach.stores import Store

log = logging.getLogger("outreach.webhooks")

_NOTICE_NAME = 48
"""At most this many characters of a notice's text name it in a confirmation (GSM-7 "...")."""

Apply = Callable[[Notification, Input], Awaitable[Notification]]
"""The client's way to apply an engine input to a stored notification (and wake its loop)."""


class Inbound:
    """Match a reply, update an attempt, render a call's script, read a signed link,
    deduplicate callbacks: for the webhooks, over the client's store, clock and messages."""

    def __init__(
        self, store: Store, clock: Clock, settings: Settings, messages: Messages, apply: Apply
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._messages = messages
        self._apply = apply

    async def _get(self, notification_id: str) -> Notification:
        found = await self._store.get(notification_id)
        if found is None:
            raise NotFound(f"no notification with id {notification_id!r}")
        return found

    async def update_attempt(
        self,
        status: AttemptStatus | str,
        *,
        attempt_id: str | None = None,
        provider_id: str | None = None,
        error: str | None = None,
        person: bool = False,
    ) -> Notification | None:
        """Apply a provider's report on one attempt, found by our id or else the provider's;
        ``person``: a person answered the call (not voicemail).

        Late, repeated and out-of-order reports are harmless: a status only moves forward.
        Given both ids, an attempt that never learned its provider id (its send's answer was
        lost) learns it. Returns None when no attempt matches.
        """
        if attempt_id is not None:
            notification = await self._store.get(notification_id_of(attempt_id))
        elif provider_id is not None:
            notification = await self._store.find_by_provider_id(provider_id)
        else:
            return None
        attempt = next(
            (
                a
                for a in (notification.attempts if notification else ())
                if a.id == attempt_id or (attempt_id is None and a.provider_id == provider_id)
            ),
            None,
        )
        if notification is None or attempt is None:
            return None
        update = StatusUpdate(attempt.id, AttemptStatus(status), error, provider_id, person)
        return await self._apply(notification, update)

    async def reply_target(
        self, medium: Medium | str, address: str, *, sender: str | None = None
    ) -> Notification | None:
        """The notification an inbound reply from ``address`` answers: the one most recently
        sent to it (from ``sender``, when known) within the grace period."""
        since = self._clock.now() - self._settings.grace
        return await self._store.latest_sent_to(Medium(medium), address, since=since, sender=sender)

    async def record_reply(
        self,
        notification_id: str,
        *,
        via: str,
        text: str,
        attempt_id: str | None = None,
        unmatched: bool = False,
    ) -> Notification:
        """Keep a reply that answers nothing in the notification's audit trail; ``unmatched``
        (free text that matched no option, acknowledgement or keyword) also opens an attention
        record, for a person to read it, or adds it to the notification's open one."""
        notification = await self._get(notification_id)
        return await self._apply(notification, Reply(via, text, attempt_id, unmatched))

    async def concurrent(
        self, notification: Notification, address: str, *, sender: str | None = None
    ) -> list[Notification]:
        """The recipient's other active notifications last texted to ``address`` from
        ``sender`` too (or from an unknown number): those a reply to it could also answer."""
        since = self._clock.now() - self._settings.grace
        found = await self._store.active_sent_to(Medium.SMS, address, since=since)
        return [
            other
            for other in found
            if other.id != notification.id
            and any(
                a.medium is Medium.SMS
                and a.address == address
                and (sender is None or a.sender in (None, sender))
                for a in other.attempts
            )
        ]

    def confirmation(
        self, notification: Notification, attempt_id: str | None, choice: str | None
    ) -> str | None:
        """The notice's own ``confirm.txt`` for an acknowledgement with ``choice`` (it sees
        ``choice`` and ``label``, in the recipient's language), or None without one."""
        attempt = notification.attempt(attempt_id) if attempt_id else None
        if attempt is None:
            return None
        option = notification.plan.option(choice) if choice else None
        label = option.label_for(notification.recipient.locale) if option else None
        try:
            return self._messages.optional(
                notification, attempt, "confirm", choice=choice, label=label
            )
        except TemplateError as error:  # edited since start(): the default still confirms
            log.warning("confirmation of %s without its confirm.txt: %s", notification.id, error)
            return None

    def notice_name(self, notification: Notification, attempt_id: str | None) -> str:
        """How a confirmation names a notice by default: the start of the text it sent (the
        customer recognises it), else the plan's name."""
        attempt = notification.attempt(attempt_id) if attempt_id else None
        try:
            text = self._messages.render(notification, attempt).body if attempt else ""
        except TemplateError:
            text = ""
        first = text.strip().splitlines()[0] if text.strip() else ""
        if not first:
            return notification.plan.name
        if len(first) <= _NOTICE_NAME:
            return first
        return first[: _NOTICE_NAME - 3].rsplit(" ", 1)[0].rstrip(" ,.:;") + "..."

    async def page_owner(self, page: Notification) -> str | None:
        """Who has the attention record ``page`` pages for (took or resolved it), when
        someone does; None for a notification that is not a page."""
        attention_id = paged_for(page)
        customer = page.context.get("customer")
        if attention_id is None or not isinstance(customer, dict):
            return None
        found = await self._store.attentions(recipient_id=customer.get("id"), open=None)
        record = next((a for a in found if a.id == attention_id), None)
        return None if record is None else record.taken_by or record.resolved_by

    async def render_attempt(self, attempt_id: str) -> tuple[Notification, Message]:
        """Render an attempt's message again (a call fetching its script, say)."""
        notification = await self._get(notification_id_of(attempt_id))
        attempt = notification.attempt(attempt_id)
        if attempt is None:
            raise NotFound(f"no attempt {attempt_id!r}")
        return notification, self._messages.render(notification, attempt)

    async def page_summary(self, attempt_id: str) -> str | None:
        """The acknowledgement page's summary of an attempt's notice (its ``page.txt``), or
        None when the notice has none."""
        notification = await self._get(notification_id_of(attempt_id))
        attempt = notification.attempt(attempt_id)
        if attempt is None:
            raise NotFound(f"no attempt {attempt_id!r}")
        return self._messages.optional(notification, attempt, "page")

    def read_token(self, token: str, purpose: str) -> TokenClaims:
        """The claims of a signed link; raises ``InvalidToken`` or ``ExpiredToken``."""
        return self._messages.signer.verify(token, now=self._clock.now(), purpose=purpose)

    async def first_sighting(self, key: str) -> bool:
        """True the first time a webhook event id is seen: callbacks arrive more than once."""
        return await self._store.remember(key, self._clock.now())

    async def forget_sighting(self, key: str) -> None:
        """Forget a webhook event id whose handling failed, so its retry is applied."""
        await self._store.forget(key)
