"""The whole stack on loopback, for demos, examples and end-to-end tests.

A :class:`Sandbox` runs the real things (the Twilio and SendGrid adapters, the webhooks app,
the store) against the :class:`~outreach.testing.ProviderSimulator` and its personas, on a
virtual clock: nothing leaves the machine and nothing waits for the wall clock.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from outreach._client import AsyncClient
from outreach._clock import FakeClock
from outreach._durations import parse_duration
from outreach._simulator import Persona, ProviderSimulator
from outreach._simulator._kept_time import KeptClock
from outreach._simulator._server import LoopbackServer
from outreach.channels import Channel
from outreach.channels.sendgrid import SendGridEmail
from outreach.channels.twilio import TwilioSMS, TwilioVoice
from outreach.webhooks import create_app

SANDBOX_NUMBER = "+15085550199"
"""The number the sandbox's texts and calls come from."""
SANDBOX_SENDER = "Notifications <alerts@sandbox.example>"
"""The address the sandbox's emails come from."""
SANDBOX_SECRET = "sandbox-only-secret-never-use-it-in-production"
"""The key the sandbox signs acknowledgement and unsubscribe links with (public: never use it
for real links)."""

_log = logging.getLogger("outreach")

StepHook = Callable[[datetime, AsyncClient], Awaitable[None]]
ChannelFactory = Callable[[Sequence[ProviderSimulator]], Mapping[str, Channel]]
"""Builds the client's channels from the simulators (the first one is the default)."""


def sandbox_channels(sims: Sequence[ProviderSimulator]) -> dict[str, Channel]:
    """The real adapters (``sms``, ``email``, ``voice``), all pointed at the first simulator."""
    settings = sims[0].settings(
        secret_key=SANDBOX_SECRET, twilio_from=SANDBOX_NUMBER, sendgrid_from=SANDBOX_SENDER
    )
    return {
        "sms": TwilioSMS(settings=settings),
        "email": SendGridEmail(settings=settings),
        "voice": TwilioVoice(settings=settings),
    }


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
    ``simulators=2`` starts a second simulator (another provider account, the same customers)
    and ``channels`` builds the client's channels from them (default: :func:`sandbox_channels`),
    e.g. to fail over from one account to the other. ``in_process=True`` hands the
    simulators' callbacks straight to the webhooks app (no socket, no HTTP client, the same
    requests; channels built with
    :meth:`ProviderSimulator.api_transport` do the same the other way), and its clock is a
    :class:`~outreach._simulator._kept_time.KeptClock`: the customers keep time with a long
    burst of paced sends instead of answering after it.
    """

    def __init__(
        self,
        *,
        store: str,
        templates: str | os.PathLike[str],
        personas: Iterable[Persona] = (),
        start: datetime | str = "2026-11-23T13:30:00+00:00",
        simulators: int = 1,
        channels: ChannelFactory = sandbox_channels,
        in_process: bool = False,
        **client_options: Any,
    ) -> None:
        self.clock = KeptClock(start) if in_process else FakeClock(start)
        self._store = store
        self._templates = templates
        self._personas = list(personas)
        self._simulators = simulators
        self._channels = channels
        self._in_process = in_process
        self._options = client_options
        self._webhooks = _Later()
        self._server = LoopbackServer(self._webhooks)
        self._exits = contextlib.AsyncExitStack()
        self.sims: list[ProviderSimulator] = []
        self.client: AsyncClient

    @property
    def sim(self) -> ProviderSimulator:
        """The first (default) simulator: SMS, email and voice go there unless told otherwise."""
        return self.sims[0]

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as exits:
            await self._server.start()
            exits.push_async_callback(self._server.aclose)
            for i in range(self._simulators):
                sim = ProviderSimulator(
                    clock=self.clock,
                    personas=self._personas,
                    webhook_url=self._server.url,
                    seed=1042 + i,
                    webhook_app=self._webhooks if self._in_process else None,
                )
                self.sims.append(await exits.enter_async_context(sim))
            if isinstance(self.clock, KeptClock):
                self.clock.simulators = self.sims
            settings = self.sim.settings(
                secret_key=SANDBOX_SECRET,
                store=self._store,
                twilio_from=SANDBOX_NUMBER,
                sendgrid_from=SANDBOX_SENDER,
            )
            _log.info(
                "sandbox: links are signed with the built-in sandbox key, not "
                "OUTREACH_SECRET_KEY (nothing here reaches a real customer)"
            )
            self.client = AsyncClient(
                store=self._store,
                channels=self._channels(self.sims),
                templates=self._templates,
                clock=self.clock,
                settings=settings,
                **self._options,
            )
            self._webhooks.app = create_app(
                self.client, twilio_auth_tokens=[sim.auth_token for sim in self.sims]
            )
            await self.client.open()
            exits.push_async_callback(self.client.close)
            self._exits = exits.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exits.__aexit__(exc_type, exc, tb)

    async def step(self) -> None:
        """Run whatever is due now: our sends, then the providers' callbacks and customers."""
        await self.client.run_due()
        if isinstance(self.clock, KeptClock):
            await self.clock.play()
            return
        for sim in self.sims:
            await sim.run_due()

    async def due_by(self, end: datetime) -> list[datetime]:
        """When the client or a simulator next has something to do, if that is by ``end``."""
        return [
            t
            for t in (await self.client.store.next_due(), *(sim.next_due() for sim in self.sims))
            if t is not None and t <= end
        ]

    async def run_until(
        self, until: datetime | timedelta | str, *, on_step: StepHook | None = None
    ) -> None:
        """Let virtual time pass to ``until`` (an instant, or a duration from now), jumping
        from one due moment to the next: our sends, the customers' answers, the callbacks."""
        end = until if isinstance(until, datetime) else self.clock.now() + parse_duration(until)
        while True:
            await self.step()
            if on_step is not None:
                await on_step(self.clock.now(), self.client)
            upcoming = await self.due_by(end)
            if not upcoming:
                return
            self.clock.set(max(min(upcoming), self.clock.now() + timedelta(microseconds=1)))
