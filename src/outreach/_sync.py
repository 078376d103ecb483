"""``Client``: the ``AsyncClient`` API for synchronous code, on a private event loop thread.

Every method is written out with the async client's own parameters (a test compares the two
signatures), so a misspelt keyword fails the type checker rather than the call.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import os
import threading
from collections.abc import Coroutine, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

from outreach._alerts import AlertThresholds
from outreach._client import AsyncClient
from outreach._clock import Clock
from outreach._hooks import Hooks
from outreach._messages import Trial
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
)
from outreach._paging import Paging
from outreach._ratelimit import DEFAULT_CAP, RecipientCap
from outreach._settings import Settings
from outreach._telemetry import Telemetry
from outreach._templates import Templates
from outreach.channels import Channel
from outreach.stores import Store

T = TypeVar("T")


class Client:
    """``AsyncClient`` for synchronous code.

    It runs its own event loop in a private thread, so it also works where a loop is already
    running (Jupyter, a sync view inside an async app). Use it as ``with Client(...) as ox:``;
    the store is opened by the constructor. A constructor that fails leaves no thread behind.
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
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="outreach", daemon=True)
        self._thread.start()

        async def build() -> AsyncClient:
            # Built on its own loop: the client's asyncio objects belong there.
            client = AsyncClient(
                store,
                channels,
                templates,
                clock,
                hooks,
                settings,
                recipient_cap=recipient_cap,
                poll_interval=poll_interval,
                drain_timeout=drain_timeout,
                channel_probe_after=channel_probe_after,
                channel_probe_max=channel_probe_max,
                channel_alerts=channel_alerts,
                telemetry=telemetry,
                attention=attention,
            )
            try:
                await client.open()
            except BaseException:
                await client.close()
                raise
            return client

        try:
            self._async = self._call(build())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    # lifecycle

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop a ``run()`` in progress, close the client and stop its thread."""
        if self._loop.is_closed():
            return
        self._call(self._async.close())
        self._stop_loop()

    # starting

    def start(
        self,
        recipient: Recipient,
        plan: Plan,
        *,
        context: Mapping[str, Any] | None = None,
        key: str | None = None,
        campaign: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Notification:
        """See ``AsyncClient.start``."""
        return self._call(
            self._async.start(
                recipient, plan, context=context, key=key, campaign=campaign, metadata=metadata
            )
        )

    def start_many(
        self,
        plan: Plan,
        requests: Iterable[StartRequest | Recipient],
        *,
        context: Mapping[str, Any] | None = None,
        campaign: str | None = None,
    ) -> builtins.list[Notification]:
        """See ``AsyncClient.start_many``."""
        return self._call(
            self._async.start_many(plan, requests, context=context, campaign=campaign)
        )

    def preview(
        self,
        plan: Plan,
        request: StartRequest | Recipient,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> builtins.list[Trial]:
        """See ``AsyncClient.preview``."""
        return self._async.preview(plan, request, context=context)

    # reading

    def get(self, notification_id: str | None = None, *, key: str | None = None) -> Notification:
        """See ``AsyncClient.get``."""
        return self._call(self._async.get(notification_id, key=key))

    def list(
        self, *, status: Status | str | None = None, campaign: str | None = None, limit: int = 1000
    ) -> builtins.list[Notification]:
        """See ``AsyncClient.list``."""
        return self._call(self._async.list(status=status, campaign=campaign, limit=limit))

    def events(
        self,
        since: int = 0,
        *,
        page: int = 1000,
        notification_id: str | None = None,
        recipient_id: str | None = None,
        kinds: Iterable[EventKind | str] | None = None,
    ) -> builtins.list[Event]:
        """Every log entry after ``since`` (an event's ``seq``), oldest first, as a list;
        filtered as ``AsyncClient.events`` filters."""

        async def collect() -> builtins.list[Event]:
            entries = self._async.events(
                since,
                page=page,
                notification_id=notification_id,
                recipient_id=recipient_id,
                kinds=kinds,
            )
            return [event async for event in entries]

        return self._call(collect())

    def cancel_campaign(self, campaign: str, *, reason: str | None = None, batch: int = 500) -> int:
        """See ``AsyncClient.cancel_campaign``."""
        return self._call(self._async.cancel_campaign(campaign, reason=reason, batch=batch))

    def timeline(self, recipient_id: str) -> builtins.list[Event]:
        """See ``AsyncClient.timeline``."""
        return self._call(self._async.timeline(recipient_id))

    def attention(
        self, *, campaign: str | None = None, open: bool | None = True, limit: int = 1000
    ) -> builtins.list[Attention]:
        """See ``AsyncClient.attention``."""
        return self._call(self._async.attention(campaign=campaign, open=open, limit=limit))

    def resolve(self, attention_id: str, *, by: str, note: str | None = None) -> Attention:
        """See ``AsyncClient.resolve``."""
        return self._call(self._async.resolve(attention_id, by=by, note=note))

    def take(self, attention_id: str, *, by: str) -> Attention:
        """See ``AsyncClient.take``."""
        return self._call(self._async.take(attention_id, by=by))

    # changing

    def acknowledge(
        self,
        notification_id: str | None = None,
        *,
        key: str | None = None,
        via: str = "api",
        choice: str | None = None,
        attempt_id: str | None = None,
    ) -> Notification:
        """See ``AsyncClient.acknowledge``."""
        return self._call(
            self._async.acknowledge(
                notification_id, key=key, via=via, choice=choice, attempt_id=attempt_id
            )
        )

    def cancel(
        self,
        notification_id: str | None = None,
        *,
        key: str | None = None,
        reason: str | None = None,
    ) -> Notification:
        """See ``AsyncClient.cancel``."""
        return self._call(self._async.cancel(notification_id, key=key, reason=reason))

    def opt_out(
        self,
        medium: Medium | str,
        address: str,
        *,
        reason: str = "opted out",
        notification_id: str | None = None,
    ) -> None:
        """See ``AsyncClient.opt_out``."""
        self._call(
            self._async.opt_out(medium, address, reason=reason, notification_id=notification_id)
        )

    def suppress(self, medium: Medium | str, address: str, *, reason: str = "api") -> None:
        """See ``AsyncClient.suppress``."""
        self._call(self._async.suppress(medium, address, reason=reason))

    def unsuppress(self, medium: Medium | str, address: str) -> None:
        """See ``AsyncClient.unsuppress``."""
        self._call(self._async.unsuppress(medium, address))

    # running

    def run_due(self) -> int:
        """See ``AsyncClient.run_due``."""
        return self._call(self._async.run_due())

    def run(self) -> None:
        """Run escalations until ``close()`` (from another thread) or Ctrl-C.

        Interrupted, it stops claiming work and re-raises ``KeyboardInterrupt``; leaving the
        ``with`` block then lets requests already handed over finish, as ``AsyncClient.run``
        does when cancelled.
        """
        future = asyncio.run_coroutine_threadsafe(self._async.run(), self._loop)
        try:
            future.result()
        except concurrent.futures.CancelledError:
            return  # close() stopped it
        except KeyboardInterrupt:
            future.cancel()
            raise
