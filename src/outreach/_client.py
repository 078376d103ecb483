"""The public API: ``AsyncClient``, the core (``outreach._sync.Client`` wraps it for sync code)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from functools import cached_property
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic_core import PydanticSerializationError

from outreach._alerts import AlertThresholds, ChannelWatch
from outreach._clock import Clock, SystemClock
from outreach._engine import Ack, Cancel, Input, OptedOut
from outreach._health import ChannelHealth
from outreach._hooks import Hooks
from outreach._inbound import Inbound
from outreach._messages import Messages, Trial
from outreach._models import (
    Attention,
    Event,
    EventKind,
    Medium,
    Notification,
    Plan,
    Recipient,
    StartRequest,
    Status,
    keypad_problem,
)
from outreach._paging import Paging, paged_for
from outreach._ratelimit import DEFAULT_CAP, Pacer, RecipientCap
from outreach._runner import Runner, new_id
from outreach._settings import SHORT_SECRET_KEY, Settings, checked_secret_key
from outreach._telemetry import Telemetry
from outreach._templates import Templates
from outreach._tokens import TokenSigner
from outreach._urls import PublicUrls
from outreach.channels import Channel, resolve_media
from outreach.channels._base import as_channel
from outreach.exceptions import (
    AlreadyTaken,
    ConfigurationError,
    InvalidChoice,
    InvalidContext,
    NotFound,
)
from outreach.stores import EventFilter, Store, open_store
from outreach.stores._codec import as_stored

log = logging.getLogger("outreach")


class Started(list[Notification]):
    """What ``start_many`` returns: the notifications, one per request, in order; ``new``
    says how many were created by that call (the rest already held their key)."""

    def __init__(self, notifications: Iterable[Notification], *, new: int) -> None:
        super().__init__(notifications)
        self.new = new


class AsyncClient:
    """Starts, tracks and acknowledges notifications, and runs the escalations.

    ``store`` is a URL (``memory://``, ``sqlite:///path.db``) or a Store; ``channels`` maps the
    names used in ``Step.channel`` to adapters; ``clock`` defaults to the system clock;
    ``recipient_cap`` limits how often one address is texted or called (None: no cap).
    A channel switched off by a configuration error is tried again after
    ``channel_probe_after``, the wait doubling on each failed try up to ``channel_probe_max``.
    A spike of one kind of failure on a channel (``channel_alerts`` says when) calls
    ``Hooks.on_channel_alert``. ``telemetry`` sends spans and metrics to the given
    OpenTelemetry providers (default: the global ones). ``attention`` pages staff when an
    attention record is not taken in time (:class:`~outreach.Paging`).
    Use it as ``async with AsyncClient(...) as ox:``.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        channels: Mapping[str, Channel] | None = None,
        templates: str | os.PathLike[str] | Templates | None = None,
        clock: Clock | None = None,
        hooks: Hooks | None = None,
        settings: Settings | None = None,
        *,
        recipient_cap: RecipientCap | None = DEFAULT_CAP,
        poll_interval: timedelta = timedelta(seconds=5),
        drain_timeout: timedelta = timedelta(seconds=10),
        channel_probe_after: timedelta = timedelta(minutes=1),
        channel_probe_max: timedelta = timedelta(minutes=30),
        channel_alerts: AlertThresholds | None = None,
        telemetry: Telemetry | None = None,
        attention: Paging | None = None,
    ) -> None:
        self.settings = settings or Settings()
        store = store if store is not None else self.settings.store
        self.store: Store = open_store(store) if isinstance(store, str) else store
        self.channels = {name: as_channel(c) for name, c in (channels or {}).items()}
        self.clock: Clock = clock or SystemClock()
        self.telemetry = telemetry or Telemetry()
        self.poll_interval = poll_interval
        folder = templates if templates is not None else self.settings.templates
        self.templates = (
            folder if isinstance(folder, Templates) or folder is None else Templates(folder)
        )
        _warn_if_links_point_here(self.settings.public_url, self.channels)
        secret = checked_secret_key(self.settings.secret_key)
        if secret is None:
            log.warning(
                "OUTREACH_SECRET_KEY is not set: acknowledgement links are signed with a "
                "throw-away key and stop working when this process exits"
            )
        elif len(secret.encode("utf-8")) < SHORT_SECRET_KEY:
            log.warning(
                "OUTREACH_SECRET_KEY is shorter than %d bytes: links signed with it are easier "
                "to forge; use a long random value",
                SHORT_SECRET_KEY,
            )
        self._messages = Messages(
            self.templates,
            PublicUrls(self.settings.public_url),
            TokenSigner(secret or secrets.token_urlsafe(32)),
            self.clock,
        )
        self._runner = Runner(
            store=self.store,
            channels=self.channels,
            media=resolve_media(self.channels),
            messages=self._messages,
            clock=self.clock,
            hooks=hooks or Hooks(),
            owner=f"{os.getpid()}-{new_id()[:8]}",
            pacer=Pacer(
                {name: c.rate for name, c in self.channels.items()},
                recipient_cap,
                senders={name: c.sender for name, c in self.channels.items()},
            ),
            drain_timeout=drain_timeout,
            health=ChannelHealth(channel_probe_after, channel_probe_max),
            alerts=ChannelWatch(channel_alerts or AlertThresholds()),
            telemetry=self.telemetry,
            paging=attention,
        )
        if attention is not None:
            self._check_channels(attention.plan)
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[Any]] = set()  # run() and run_due() calls in progress

    # lifecycle

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect to the store (and migrate it)."""
        await self.store.open()

    async def close(self) -> None:
        """Stop any ``run()`` or ``run_due()`` in progress (as cancelling it does), then close
        the store and every channel. No task of the client's outlives it."""
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        for channel in self.channels.values():
            await channel.aclose()
        await self.store.close()

    # starting

    async def start(
        self,
        recipient: Recipient,
        plan: Plan,
        *,
        context: Mapping[str, Any] | None = None,
        key: str | None = None,
        campaign: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Notification:
        """Start escalating ``plan`` to ``recipient``; idempotent on ``key``.

        Every template of the plan is rendered once with ``context`` first, so a missing
        variable fails here, before anything is stored or sent.
        """
        request = StartRequest(recipient, context or {}, key, metadata or {})
        [notification] = await self.start_many(plan, [request], campaign=campaign)
        return notification

    async def start_many(
        self,
        plan: Plan,
        requests: Iterable[StartRequest | Recipient],
        *,
        context: Mapping[str, Any] | None = None,
        campaign: str | None = None,
    ) -> list[Notification]:
        """Start ``plan`` for many recipients in one transaction (a campaign).

        Everything is checked before anything is stored: one bad request stores nothing.
        The list returned is a :class:`Started`: its ``new`` counts the notifications this
        call created (the others' keys were already stored).
        """
        self._check_channels(plan)
        now = self.clock.now()
        fresh = []
        for request in requests:
            notification = self._new(plan, request, context, campaign, now)
            self._messages.trial_render(notification, self._runner.media)
            fresh.append(notification)
        created = [
            Event(at=now, notification_id=n.id, kind=EventKind.CREATED, data={"key": n.key})
            for n in fresh
        ]
        try:
            stored = await self.store.create(fresh, created)
        except PydanticSerializationError as error:
            raise ConfigurationError(f"metadata must be JSON data: {error}") from None
        self._wake.set()
        return Started(stored, new=sum(s.id == f.id for s, f in zip(stored, fresh, strict=True)))

    def _new(
        self,
        plan: Plan,
        request: StartRequest | Recipient,
        context: Mapping[str, Any] | None,
        campaign: str | None,
        now: datetime,
    ) -> Notification:
        if isinstance(request, Recipient):
            request = StartRequest(request)
        return Notification(
            id=new_id(),
            key=request.key,
            campaign=campaign,
            metadata=dict(request.metadata),
            recipient=request.recipient,
            plan=plan,
            context=_as_stored({**(context or {}), **request.context}, request),
            created_at=now,
            updated_at=now,
            due_at=now,
            deadline_at=None if plan.deadline is None else now + plan.deadline,
        )

    def preview(
        self,
        plan: Plan,
        request: StartRequest | Recipient,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> builtins.list[Trial]:
        """The messages ``start()`` would check for this request, rendered with placeholder
        links: one per step, then per follow-up. Stores and sends nothing (the store need
        not be open); raises what ``start()`` would (``TemplateError``, ``ConfigurationError``).
        """
        self._check_channels(plan)
        notification = self._new(plan, request, context, None, self.clock.now())
        return self._messages.trial_render(notification, self._runner.media)

    def _check_channels(self, plan: Plan) -> None:
        for name in plan.channel_names():
            if name not in self.channels:
                raise ConfigurationError(
                    f"plan {plan.name!r} uses channel {name!r}, but the client has "
                    f"{sorted(self.channels) or 'no channels'}"
                )
        # Each plan (follow-ups' too) offers its own options; it checked channel "voice" by
        # name, and only the client knows what else calls.
        for each in plan.plans():
            media = self._runner.media
            calls = [s.channel for s in each.steps if media[s.channel] is Medium.VOICE]
            if calls and (problem := keypad_problem(each.options, f"channel {calls[0]!r} (calls)")):
                raise ConfigurationError(f"plan {each.name!r}: {problem}")

    # reading

    async def get(
        self, notification_id: str | None = None, *, key: str | None = None
    ) -> Notification:
        """The notification with this id (or ``key=``); raises ``NotFound``."""
        if (notification_id is None) == (key is None):
            raise TypeError("pass exactly one of an id or key=")
        if notification_id is not None:
            found = await self.store.get(notification_id)
        else:
            assert key is not None
            found = await self.store.get_by_key(key)
        if found is None:
            raise NotFound(
                f"no notification with {'id' if key is None else 'key'} {notification_id or key!r}"
            )
        return found

    async def list(
        self, *, status: Status | str | None = None, campaign: str | None = None, limit: int = 1000
    ) -> builtins.list[Notification]:
        """Notifications, oldest first, by status and/or campaign."""
        return await self.store.query(
            status=None if status is None else Status(status), campaign=campaign, limit=limit
        )

    async def events(
        self,
        since: int = 0,
        *,
        page: int = 1000,
        notification_id: str | None = None,
        recipient_id: str | None = None,
        kinds: Iterable[EventKind | str] | None = None,
    ) -> AsyncIterator[Event]:
        """Every log entry after ``since`` (an event's ``seq``), oldest first, until caught up;
        only those of one notification, of one recipient's notifications, or of some
        ``kinds``, when asked (the store filters)."""
        where = None
        if notification_id is not None or recipient_id is not None or kinds is not None:
            where = EventFilter(
                notification_id,
                recipient_id,
                None if kinds is None else frozenset(_kinds(kinds)),
            )
        while True:
            batch = await self.store.events(since, page, where)
            for event in batch:
                yield event
            if len(batch) < page:
                return
            since = batch[-1].seq

    async def timeline(self, recipient_id: str) -> builtins.list[Event]:
        """Everything that happened with one customer, in order, across all of their
        notifications (follow-ups included): attempts, status changes, replies with their
        text, choices, follow-ups, attention opened and resolved.
        ``outreach.outcomes.describe_event`` puts an entry into words."""
        return [event async for event in self.events(recipient_id=recipient_id)]

    async def attention(
        self, *, campaign: str | None = None, open: bool | None = True, limit: int = 1000
    ) -> builtins.list[Attention]:
        """Attention records (a person should act), oldest first: open ones by default,
        ``open=False`` for resolved ones, ``open=None`` for both; of one campaign if given."""
        return await self.store.attentions(campaign=campaign, open=open, limit=limit)

    async def resolve(self, attention_id: str, *, by: str, note: str | None = None) -> Attention:
        """Close an attention record, saying who did (and, if given, what they did).

        Idempotent: resolving it again returns it as first resolved and logs nothing; raises
        ``NotFound`` for an unknown id.
        """
        if not by.strip():
            raise ValueError("resolve(..., by=) must name who resolved it")
        found = await self.store.resolve_attention(
            attention_id, by=by.strip(), note=note, now=self.clock.now()
        )
        if found is None:
            raise NotFound(f"no attention record with id {attention_id!r}")
        attention, event = found
        if event is not None:
            log.info("attention %s resolved", attention.id)
            await self._runner.hooks.attention_resolved(attention)
        await self._runner.stop_paging(attention.id, f"resolved by {attention.resolved_by}")
        return attention

    async def take(self, attention_id: str, *, by: str) -> Attention:
        """Take an attention record: ``by`` is its owner from now on, and every page for it
        stops (``Paging``). Taking it again, by the same person, changes nothing; raises
        ``AlreadyTaken`` (naming who has it) when someone else took or resolved it first,
        ``NotFound`` for an unknown id. Answering a page takes its record the same way."""
        attention = await self._take(attention_id, by)
        await self._runner.stop_paging(attention.id, f"taken by {attention.taken_by}")
        self._wake.set()
        return attention

    async def _take(self, attention_id: str, by: str) -> Attention:
        if not by.strip():
            raise ValueError("take(..., by=) must name who takes it")
        found = await self.store.take_attention(attention_id, by=by.strip(), now=self.clock.now())
        if found is None:
            raise NotFound(f"no attention record with id {attention_id!r}")
        attention, event = found
        if event is not None:
            log.info("attention %s taken by %s", attention.id, attention.taken_by)
            await self._runner.hooks.attention_taken(attention)
            return attention
        if attention.taken_by == by.strip():
            return attention
        if attention.taken_by is not None:
            owner = attention.taken_by
            raise AlreadyTaken(f"attention {attention.id} is already taken by {owner}", owner=owner)
        owner = attention.resolved_by or "someone"
        raise AlreadyTaken(
            f"attention {attention.id} is already resolved by {owner}", owner=owner, closed=True
        )

    # changing

    async def acknowledge(
        self,
        notification_id: str | None = None,
        *,
        key: str | None = None,
        via: str = "api",
        choice: str | None = None,
        attempt_id: str | None = None,
    ) -> Notification:
        """Record the customer's acknowledgement (and choice); stops every pending step.

        On a page (``Paging``) it takes the attention record for the staff member paged, and
        raises ``AlreadyTaken`` when someone else has it."""
        notification = await self.get(notification_id, key=key)
        if (
            choice is not None
            and notification.plan.options
            and not notification.plan.option(choice)
        ):
            keys = [option.key for option in notification.plan.options]
            raise InvalidChoice(
                f"notification {notification.id}: choice {choice!r} is not one of {keys}"
            )
        ack = Ack(via=via, choice=choice, attempt_id=attempt_id)
        attention_id = paged_for(notification)
        if attention_id is None:
            return await self._apply(notification, ack)
        # A page: answering it takes the record (or raises AlreadyTaken), then stops the others.
        taken = await self._take(attention_id, notification.recipient.id)
        stored = await self._apply(notification, ack)
        await self._runner.stop_paging(attention_id, f"taken by {taken.taken_by}")
        return stored

    async def cancel(
        self,
        notification_id: str | None = None,
        *,
        key: str | None = None,
        reason: str | None = None,
    ) -> Notification:
        """Withdraw a notification: nothing more is sent for it."""
        notification = await self.get(notification_id, key=key)
        return await self._apply(notification, Cancel(reason))

    async def cancel_campaign(
        self, campaign: str, *, reason: str | None = None, batch: int = 500
    ) -> int:
        """Withdraw every pending or active notification of ``campaign``, ``batch`` to a
        transaction (never the whole campaign in memory); how many were cancelled."""
        cancelled = await self._runner.cancel_campaign(campaign, reason=reason, batch=batch)
        self._wake.set()
        return cancelled

    async def _apply(self, notification: Notification, event: Input) -> Notification:
        opted_out = await self._runner.opted_out([notification])
        _, stored = await self._runner.apply(
            notification, event, opted_out[notification.id], leased=False
        )
        self._wake.set()
        return stored

    @cached_property
    def inbound(self) -> Inbound:
        """What the webhooks need from this client (``outreach._inbound.Inbound``)."""
        return Inbound(self.store, self.clock, self.settings, self._messages, self._apply)

    async def opt_out(
        self,
        medium: Medium | str,
        address: str,
        *,
        reason: str = "opted out",
        notification_id: str | None = None,
    ) -> None:
        """Suppress ``address`` on ``medium``; the notification it answered (if given) stops
        waiting on that medium and moves on."""
        medium = Medium(medium)
        await self.suppress(medium, address, reason=reason)
        if notification_id is not None:
            note = "opted out" if reason == "opted out" else f"opted out ({reason})"
            await self._apply(await self.get(notification_id), OptedOut(medium, note))

    async def suppress(self, medium: Medium | str, address: str, *, reason: str = "api") -> None:
        """Never send to ``address`` on ``medium`` again (until ``unsuppress``)."""
        await self.store.suppress(Medium(medium), address, reason, self.clock.now())

    async def unsuppress(self, medium: Medium | str, address: str) -> None:
        """Lift a suppression."""
        await self.store.unsuppress(Medium(medium), address)

    # running

    @property
    def concurrency(self) -> int:
        """How many notifications ``run()`` and ``run_due()`` drive at once: claimed and in
        progress, topped up as they finish (sends are further capped per channel by its
        ``max_in_flight``). By default twice the channels' in-flight slots, at most 500."""
        return self._runner.window

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        if value < 1:
            raise ConfigurationError(f"concurrency must be at least 1, not {value}")
        self._runner.batch_size = value

    async def run_due(self) -> int:
        """Run everything due now, then return how many notifications were handled.

        Cancelled (or on ``close()``), it stops claiming, lets requests already handed to a
        provider finish (up to ``drain_timeout``) and gives every other claimed notification
        back to the store at once, for this or another process to send.
        """
        with self._tracked():
            return await self._runner.run_due()

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            yield
        finally:
            self._running.discard(task)

    async def run(self) -> None:
        """Run escalations until cancelled, sleeping until the next due time.

        Work started by this client wakes the loop at once; work written by another process
        to the same store is noticed within ``poll_interval`` (on PostgreSQL, at once:
        ``LISTEN/NOTIFY``, unless the URL says ``?notify=off``). Cancelled, it stops as
        ``run_due`` does.
        """
        with self._tracked():
            await self._run_forever()

    async def _run_forever(self) -> None:
        await self._runner.run_forever(self._wake, self.poll_interval)


def _kinds(kinds: Iterable[EventKind | str]) -> Iterator[EventKind]:
    for kind in kinds:
        try:
            yield EventKind(kind)
        except ValueError:
            known = ", ".join(k.value for k in EventKind)
            raise ValueError(f"no event kind {kind!r}; kinds are: {known}") from None


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _warn_if_links_point_here(public_url: str, channels: Mapping[str, Channel]) -> None:
    """Real providers with a loopback public URL: callbacks and links would go nowhere."""
    real = [c.name for c in channels.values() if c.base_url and not _loopback(c.base_url)]
    if real and _loopback(public_url):
        log.warning(
            "OUTREACH_PUBLIC_URL is %s, but %s talk to real providers: status callbacks and "
            "the links in messages will point at this machine; set it to the address "
            "providers and customers reach",
            public_url,
            ", ".join(real),
        )


def _as_stored(context: Mapping[str, Any], request: StartRequest) -> dict[str, Any]:
    """The context as the store will give it back to every send, so that the trial render sees
    exactly what a send sees; raises ``InvalidContext`` naming a key that cannot be stored."""
    try:
        return as_stored(context)
    except PydanticSerializationError as error:
        name = next((k for k, v in context.items() if not _storable(v)), None)
        raise InvalidContext(
            f"context key {name!r} (recipient {request.recipient.id!r}, key {request.key!r}) "
            f"cannot be stored: context must be JSON data ({error})"
        ) from None


def _storable(value: Any) -> bool:
    try:
        as_stored({"value": value})
    except PydanticSerializationError:
        return False
    return True
