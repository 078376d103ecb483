"""The whole stack on loopback, for demos, examples and end-to-end tests.

A :class:`Sandbox` runs the real things (the Twilio and SendGrid adapters, the webhooks app,
the store) against the :class:`~outreach.testing.ProviderSimulator` and its personas, on a
virtual clock: nothing leaves the machine and nothing waits for the wall clock.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from outreach._client import AsyncClient
from outreach._clock import FakeClock
from outreach._durations import parse_duration
from outreach._simulator import Persona, ProviderSimulator
from outreach._simulator._server import LoopbackServer
from outreach.channels import Channel
from outreach.channels.sendgrid import SendGridEmail
from outreach.channels.twilio import TwilioSMS, TwilioVoice
from outreach.webhooks import create_app

SANDBOX_NUMBER = "+15085550199"
"""The number the sandbox's texts and calls come from."""

StepHook = Callable[[datetime, AsyncClient], Awaitable[None]]


class _Later:
    """An ASGI app filled in once the client exists (the client needs the app's URL first)."""

    app: Callable[..., Awaitable[None]] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


class Sandbox:
    """``async with Sandbox(store=..., templates=..., personas=[...]) as box:`` then use
    ``box.client`` as usual and ``await box.run_until("4d")`` to let time pass.

    ``client_options`` go to the :class:`AsyncClient` (hooks, recipient_cap...).
    """

    def __init__(
        self,
        *,
        store: str,
        templates: str | os.PathLike[str],
        personas: Iterable[Persona] = (),
        start: datetime | str = "2026-11-23T13:30:00+00:00",
        **client_options: Any,
    ) -> None:
        self.clock = FakeClock(start)
        self._store = store
        self._templates = templates
        self._personas = list(personas)
        self._options = client_options
        self._webhooks = _Later()
        self._server = LoopbackServer(self._webhooks)
        self.sim: ProviderSimulator
        self.client: AsyncClient

    async def __aenter__(self) -> Self:
        await self._server.start()
        self.sim = ProviderSimulator(
            clock=self.clock, personas=self._personas, webhook_url=self._server.url, seed=1042
        )
        await self.sim.__aenter__()
        settings = self.sim.settings(
            secret_key="sandbox-only-secret",
            store=self._store,
            twilio_from=SANDBOX_NUMBER,
            sendgrid_from="Notifications <alerts@sandbox.example>",
        )
        channels: dict[str, Channel] = {
            "sms": TwilioSMS(settings=settings),
            "email": SendGridEmail(settings=settings),
            "voice": TwilioVoice(settings=settings),
        }
        self.client = AsyncClient(
            store=self._store,
            channels=channels,
            templates=self._templates,
            clock=self.clock,
            settings=settings,
            **self._options,
        )
        self._webhooks.app = create_app(self.client)
        await self.client.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.client.close()
            await self.sim.__aexit__(exc_type, exc, tb)
        finally:
            await self._server.aclose()

    async def run_until(
        self, until: datetime | timedelta | str, *, on_step: StepHook | None = None
    ) -> None:
        """Let virtual time pass to ``until`` (an instant, or a duration from now), jumping
        from one due moment to the next: our sends, the customers' answers, the callbacks."""
        end = until if isinstance(until, datetime) else self.clock.now() + parse_duration(until)
        while True:
            await self.client.run_due()
            await self.sim.run_due()
            if on_step is not None:
                await on_step(self.clock.now(), self.client)
            upcoming = [
                t
                for t in (await self.client.store.next_due(), self.sim.next_due())
                if t is not None and t <= end
            ]
            if not upcoming:
                return
            self.clock.set(max(min(upcoming), self.clock.now() + timedelta(microseconds=1)))
