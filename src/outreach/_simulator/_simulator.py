"""``ProviderSimulator``: a local stand-in for Twilio and SendGrid, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
from starlette.types import ASGIApp

from outreach._clock import SystemClock
from outreach._settings import Settings
from outreach._simulator._actions import Clock, Scheduler
from outreach._simulator._asgi import AppTransport
from outreach._simulator._faults import Channel, Fault, Faults
from outreach._simulator._http import Outbound
from outreach._simulator._personas import Duration, Persona, delta
from outreach._simulator._routes import build_app
from outreach._simulator._sendgrid import SendGridSim
from outreach._simulator._server import LoopbackServer
from outreach._simulator._twilio import TwilioSim
from outreach._simulator._world import Personas, World

__all__ = ["ProviderSimulator"]

log = logging.getLogger("outreach.simulator")


class ProviderSimulator:
    """Twilio's and SendGrid's APIs on ``http://127.0.0.1:PORT``, with simulated customers.

    Point the adapters at it (``base_url=sim.base_url``, the simulator's credentials) and the
    webhooks app's public URL at ``webhook_url``::

        async with ProviderSimulator(clock=clock, personas=[...]) as sim:
            sim.webhook_url = "http://127.0.0.1:8001"      # where create_app() is served
            ...
            clock.advance("5m")
            await ox.run_due()
            await sim.run_due()      # callbacks, replies, key presses, email events now due

    It answers API requests the moment they arrive (with the providers' status codes, error
    bodies and resources), but everything that follows -- status callbacks, replies, the
    call's progress, SendGrid events, a customer clicking a link -- is queued on ``clock``
    and happens only in :meth:`run_due` (or by itself with ``autorun=True``), so a virtual
    clock drives the customers too. Customers are :class:`Persona` objects; faults are
    injected with :meth:`fail_next`, :meth:`slow_next` and :meth:`drop_next`.

    Sync code: ``sim.start_in_thread()`` / ``sim.stop()`` (or ``with ProviderSimulator(...)``)
    and :meth:`run_due_sync`.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        account_sid: str | None = None,
        auth_token: str | None = None,
        sendgrid_api_key: str | None = None,
        webhook_url: str | None = None,
        personas: Iterable[Persona] = (),
        seed: int | None = None,
        autorun: bool = False,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        port: int = 0,
        webhook_app: ASGIApp | None = None,
    ) -> None:
        """``clock``: drives the simulated behaviour (default: the system clock).
        ``account_sid``, ``auth_token``, ``sendgrid_api_key``: the credentials it accepts
        (default: made up). ``webhook_url``: public base URL of the webhooks app, where
        inbound texts and SendGrid events go (status callbacks go to the URL each request
        names). ``seed`` makes SIDs and ids repeatable. ``autorun``: perform actions as they
        come due on ``clock`` without :meth:`run_due` (e.g. with the system clock).
        ``webhook_transport``: an httpx transport for the simulator's own requests (say
        ``httpx.ASGITransport(app)``, to skip serving the webhooks app). ``webhook_app``:
        an ASGI app (the webhooks app) those requests are handed to directly, in this
        process, instead: no socket and no HTTP client, a fraction of the CPU.
        """
        if webhook_transport is not None and webhook_app is not None:
            raise ValueError("give webhook_transport or webhook_app, not both")
        rng = random.Random(seed)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.callbacks: list[dict[str, Any]] = []
        """Every request the simulator made (callbacks, webhooks, browser visits), in order:
        ``at``, ``kind``, ``method``, ``url``, ``params`` or ``json``, ``status``, ``error``,
        ``response``."""
        self.requests: list[dict[str, Any]] = []
        """Every API request it received: ``at``, ``method``, ``path``, ``channel``,
        ``status`` (None if dropped), ``fault``."""
        scheduler = Scheduler()
        outbound = Outbound(self._clock.now, self.callbacks, webhook_transport, webhook_app)
        self._world = World(
            clock=self._clock,
            scheduler=scheduler,
            outbound=outbound,
            personas=Personas(personas),
            rng=rng,
            account_sid=account_sid or "AC" + f"{rng.getrandbits(128):032x}",
            auth_token=auth_token or f"{rng.getrandbits(128):032x}",
            sendgrid_api_key="",
        )
        self._world.sendgrid_api_key = sendgrid_api_key or (
            f"SG.{self._world.token(16)}.{self._world.token(32)}"
        )
        outbound.now = self._world.time
        self.webhook_url = webhook_url
        self._twilio = TwilioSim(self._world)
        self._sendgrid = SendGridSim(self._world)
        self._faults = Faults()
        self._api = build_app(
            self._world, self._twilio, self._sendgrid, self._faults, self.requests
        )
        self._server = LoopbackServer(self._api, port=port)
        self._autorun = autorun
        self._autorun_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        scheduler.on_change = self._poke

    def __repr__(self) -> str:
        where = self._server.url if self.started else "not started"
        return f"ProviderSimulator({where}, webhook_url={self.webhook_url!r})"

    # -- configuration ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: Twilio's and SendGrid's base URL for the adapters."""
        return self._server.url

    def api_transport(self) -> httpx.AsyncBaseTransport:
        """The simulated APIs without a socket: an httpx transport that hands each request
        straight to them, as the loopback server would (``TwilioSMS(..., http="httpx",
        transport=sim.api_transport())``). Much less CPU a request, for rehearsals of
        thousands of customers; :meth:`drop_next` needs the server (a dropped request is
        answered 500 here)."""
        return AppTransport(self._api)

    @property
    def started(self) -> bool:
        """Whether it is serving."""
        return self._server.loop is not None and (self._server.running or self._server.in_thread)

    @property
    def account_sid(self) -> str:
        """The Twilio account SID it accepts."""
        return self._world.account_sid

    @property
    def auth_token(self) -> str:
        """The Twilio auth token it accepts and signs callbacks with."""
        return self._world.auth_token

    @property
    def sendgrid_api_key(self) -> str:
        """The SendGrid API key it accepts."""
        return self._world.sendgrid_api_key

    @property
    def sendgrid_public_key(self) -> str:
        """The Event Webhook verification key (base64 DER, as SendGrid's console shows it)."""
        return self._world.signer.public_key

    @property
    def webhook_url(self) -> str | None:
        """Public base URL of the webhooks app (inbound texts, SendGrid events, no slash)."""
        return self._world.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        if url is not None:
            url = url.strip().rstrip("/")
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook_url needs http:// or https://, not {url!r}")
        self._world.webhook_url = url

    @property
    def clock(self) -> Clock:
        """The clock that times the simulated behaviour."""
        return self._clock

    @property
    def personas(self) -> list[Persona]:
        """The registered personas."""
        return list(self._world.personas)

    def add_persona(self, persona: Persona) -> None:
        """Register (or replace, by number and address) a persona."""
        self._world.personas.add(persona)

    def settings(self, **overrides: Any) -> Settings:
        """``outreach`` settings that point everything at this simulator.

        Credentials, base URLs, the SendGrid verification key and (with ``webhook_url``) the
        public URL; ``overrides`` add or replace fields (``twilio_from=...``,
        ``sendgrid_from=...``, ``secret_key=...``).
        """
        values: dict[str, Any] = {
            "twilio_account_sid": self.account_sid,
            "twilio_auth_token": self.auth_token,
            "twilio_base_url": self.base_url,
            "sendgrid_api_key": self.sendgrid_api_key,
            "sendgrid_base_url": self.base_url,
            "sendgrid_webhook_public_key": self.sendgrid_public_key,
        }
        if self.webhook_url is not None:
            values["public_url"] = self.webhook_url
        return Settings(**(values | overrides))

    def env(self) -> dict[str, str]:
        """The same as ``OUTREACH_*`` environment variables (for a CLI in a subprocess)."""
        values = {
            "OUTREACH_TWILIO_ACCOUNT_SID": self.account_sid,
            "OUTREACH_TWILIO_AUTH_TOKEN": self.auth_token,
            "OUTREACH_TWILIO_BASE_URL": self.base_url,
            "OUTREACH_SENDGRID_API_KEY": self.sendgrid_api_key,
            "OUTREACH_SENDGRID_BASE_URL": self.base_url,
            "OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY": self.sendgrid_public_key,
        }
        if self.webhook_url is not None:
            values["OUTREACH_PUBLIC_URL"] = self.webhook_url
        return values

    # -- records ------------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Messages created through the API: ``sid``, ``to``, ``from``, ``body``,
        ``messaging_service_sid``, ``status_callback``, ``status`` (as it is now),
        ``error_code``, ``num_segments``, ``created_at``, ``params``."""
        return [message.record() for message in self._twilio.messages]

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Calls created through the API: ``sid``, ``to``, ``from``, ``url``, ``status``,
        ``answered_by``, ``digits`` pressed, ``callbacks`` sent, ``twiml`` documents played,
        ``duration``, ``created_at``/``answered_at``/``ended_at``, ``params`` ..."""
        return [call.record() for call in list(self._twilio.calls.values())]

    @property
    def emails(self) -> list[dict[str, Any]]:
        """Emails accepted by mail/send: ``message_id`` (X-Message-Id), ``to``, ``from``,
        ``subject``, ``text``, ``html``, ``custom_args``, ``headers``, ``created_at``,
        ``payload``."""
        return [email.record() for email in self._sendgrid.emails]

    @property
    def email_events(self) -> list[dict[str, Any]]:
        """Every SendGrid event produced so far (posted or not), in order."""
        return list(self._sendgrid.events)

    @property
    def auto_replies(self) -> list[dict[str, Any]]:
        """Texts sent back to customers: a webhook's TwiML ``<Message>`` (``source``
        ``"webhook"``) or Twilio's own STOP/START confirmations (``"twilio"``)."""
        return list(self._twilio.auto_replies)

    # -- faults -------------------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        retry_after: float | None = None,
        channel: Channel | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``count`` API requests (of ``channel``: ``"sms"``, ``"voice"``,
        ``"email"``; default any) with HTTP ``status`` and the provider's error body
        (429: Twilio 20429 / SendGrid "too many requests" with ``X-RateLimit-Reset``).
        ``retry_after`` adds a ``Retry-After`` header (seconds); ``delay`` answers late."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error (4xx or 5xx), not {status}")
        self._faults.add(
            Fault(count, channel=channel, status=status, retry_after=retry_after, delay=delay)
        )

    def slow_next(self, count: int = 1, *, delay: float, channel: Channel | None = None) -> None:
        """Answer the next ``count`` API requests normally, but ``delay`` real seconds late.

        The request takes effect even when the client gives up waiting (as on a provider).
        """
        self._faults.add(Fault(count, channel=channel, delay=delay))

    def drop_next(
        self,
        count: int = 1,
        *,
        channel: Channel | None = None,
        processed: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Close the connection of the next ``count`` API requests without an answer.

        ``processed=True``: the request takes effect first (a message exists that the client
        never heard of); otherwise it is lost.
        """
        self._faults.add(Fault(count, channel=channel, drop=True, processed=processed, delay=delay))

    def clear_faults(self) -> None:
        """Forget faults not yet used."""
        self._faults.clear()

    # -- customers acting on their own --------------------------------------------------------

    def inbound_sms(
        self,
        from_: str,
        to: str,
        body: str,
        *,
        after: Duration | None = None,
        messaging_service_sid: str | None = None,
    ) -> None:
        """A customer texts ``body`` from ``from_`` to our number ``to`` (``after`` from now)."""
        at = self._world.now() + (delta(after) if after is not None else timedelta(0))

        async def receive() -> None:
            await self._twilio.receive(from_, to, body, service=messaging_service_sid)

        self._world.scheduler.add(at, f"inbound:{from_}", receive)

    # -- time ---------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When the next simulated action is due (None: nothing pending)."""
        return self._world.scheduler.next_due()

    @property
    def pending(self) -> int:
        """How many simulated actions are waiting for their time."""
        return len(self._world.scheduler)

    async def run_due(self) -> int:
        """Perform every action due on the clock, in time order; how many ran.

        Actions made due by others (a hang-up answered meanwhile, a reply due at once) run in
        the same call. From another event loop than the server's, it runs in the server's.
        """
        loop = self._server.loop
        if loop is not None and self.started and loop is not asyncio.get_running_loop():
            return await asyncio.wrap_future(self._server.call(self._run_due()))
        return await self._run_due()

    def run_due_sync(self) -> int:
        """:meth:`run_due` for sync code, with the simulator started by ``start_in_thread``."""
        if not self._server.in_thread:
            raise RuntimeError("run_due_sync() needs start_in_thread(); use await run_due()")
        return self._server.call(self._run_due()).result()

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop not in self._locks:
            self._locks[loop] = asyncio.Lock()
        return self._locks[loop]

    async def _run_due(self) -> int:
        scheduler = self._world.scheduler
        count = 0
        async with self._lock():
            while (action := scheduler.pop_due(self._world.now())) is not None:
                self._world.moment = action.at
                try:
                    await action.run()
                    count += 1
                    following = scheduler.peek()
                    now = self._world.now()
                    if following is None or not following.batchable or following.at > now:
                        await self._sendgrid.flush()  # events due together: one batch
                finally:
                    self._world.moment = None
        return count

    def _poke(self) -> None:
        wake, loop = self._wake, self._server.loop
        if wake is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def _run_forever(self) -> None:
        wake = self._wake = asyncio.Event()
        sleep_until = getattr(self._clock, "sleep_until", None)
        while True:
            try:
                await self._run_due()
            except Exception:
                log.exception("simulator: an action failed")
            wake.clear()
            when = self.next_due()
            if sleep_until is not None:
                await sleep_until(when, wake)
                continue
            timeout = None if when is None else (when - self._world.now()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), None if timeout is None else max(timeout, 0))

    # -- life cycle ---------------------------------------------------------------------------

    async def _begin(self) -> None:
        if self._autorun:
            self._autorun_task = asyncio.create_task(self._run_forever())

    async def _end(self) -> None:
        task, self._autorun_task = self._autorun_task, None
        self._wake = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._world.outbound.aclose()

    async def start(self) -> ProviderSimulator:
        """Serve in the running event loop (see also ``async with``)."""
        await self._server.start()
        await self._begin()
        return self

    async def aclose(self) -> None:
        """Stop serving (after :meth:`start`)."""
        if self._server.in_thread:
            self.stop()
            return
        await self._end()
        await self._server.aclose()

    async def __aenter__(self) -> ProviderSimulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start_in_thread(self) -> ProviderSimulator:
        """Serve from a background thread with its own event loop (for sync code)."""
        self._server.start_in_thread(ready=self._begin)
        return self

    def stop(self) -> None:
        """Stop a simulator started with :meth:`start_in_thread`."""
        if self._server.running and not self._server.in_thread:
            raise RuntimeError("started in this event loop: stop it with await sim.aclose()")
        self._server.stop(before=self._end)

    def __enter__(self) -> ProviderSimulator:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
