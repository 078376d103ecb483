"""The whole stack on loopback, for end-to-end tests: one (or more) ``ProviderSimulator``, the
real Twilio and SendGrid adapters talking HTTP to it, the real webhooks app served by uvicorn,
an ``AsyncClient`` on a SQLite file, all on one virtual clock.

The stack is a :class:`~outreach.testing.Sandbox` (what ``outreach demo`` runs on) plus what the
tests inspect. Nothing waits for the wall clock: :meth:`Stack.run_until` jumps from one due
moment to the next (our sends, the customers' answers, the providers' callbacks).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from outreach import AsyncClient
from outreach._durations import parse_duration
from outreach._models import Attempt, Event, EventKind, Notification, Plan, Recipient
from outreach._sandbox import (
    SANDBOX_NUMBER,
    SANDBOX_SECRET,
    SANDBOX_SENDER,
    ChannelFactory,
    sandbox_channels,
)
from outreach.demo import demo_plan, templates_dir
from outreach.testing import FakeClock, Persona, ProviderSimulator, Sandbox

START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
"""A Monday, 10:00 in New York: far from the plan's quiet hours (21:00-08:00 local)."""
OUR_NUMBER = SANDBOX_NUMBER
"""The number our texts and calls come from (the first simulator's account)."""
SENDER = SANDBOX_SENDER
SECRET = SANDBOX_SECRET


def cape_air_plan() -> Plan:
    """The plan ``outreach demo`` ships: SMS (15 min), email (30 min), call (1 h); a refund
    (choice 2) is followed up by a call 3 days later."""
    return demo_plan()


def passenger(number: int, *, phone: bool = True, email: bool = True) -> Recipient:
    """A Boston passenger with a (fictional, valid) mobile number and an address."""
    return Recipient(
        id=f"pax-{number:02d}",
        phone=f"+161755501{number:02d}" if phone else None,
        email=f"pax{number:02d}@example.com" if email else None,
        timezone="America/New_York",
        attributes={"name": f"Passenger {number}"},
    )


@dataclass
class Stack:
    """Everything one end-to-end test drives and inspects."""

    box: Sandbox
    plan: Plan

    @property
    def clock(self) -> FakeClock:
        return self.box.clock

    @property
    def sims(self) -> list[ProviderSimulator]:
        return self.box.sims

    @property
    def sim(self) -> ProviderSimulator:
        """The first (default) simulator: SMS, email and voice go there unless told otherwise."""
        return self.box.sim

    @property
    def client(self) -> AsyncClient:
        return self.box.client

    # -- time -----------------------------------------------------------------------------

    def at(self, offset: str | timedelta) -> datetime:
        """``START`` plus ``offset`` (``"15m"``)."""
        delta = parse_duration(offset)
        assert isinstance(delta, timedelta)
        return START + delta

    async def step(self) -> None:
        """Run whatever is due now: our sends, then the providers' callbacks and customers."""
        await self.box.step()

    async def run_until(self, end: datetime | str | timedelta) -> None:
        """Let virtual time pass to ``end`` (an instant, or an offset from ``START``), jumping
        from one due moment to the next; the clock is at ``end`` afterwards.

        Stricter than :meth:`Sandbox.run_until`, because the tests compare instants exactly:
        work still due at the current instant is run again at that instant (the sandbox moves
        the clock on by a microsecond), a run that makes no progress fails, and the clock ends
        at ``end``."""
        if not isinstance(end, datetime):
            end = self.at(end)
        stuck = 0
        for _ in range(20_000):
            await self.step()
            now = self.clock.now()
            upcoming = await self.box.due_by(end)
            if not upcoming:
                if now >= end:
                    return
                self.clock.set(end)  # then run what is due exactly at ``end``
                continue
            soonest = min(upcoming)
            if soonest <= now:
                stuck += 1
                assert stuck < 50, f"nothing progresses at {now}: due {soonest}"
                continue
            stuck = 0
            self.clock.set(soonest)
        raise AssertionError("run_until did not settle in 20000 steps")

    # -- the store ------------------------------------------------------------------------

    async def start(
        self,
        recipient: Recipient,
        *,
        key: str | None = None,
        plan: Plan | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Notification:
        """Start a notification (the Cape Air plan by default) for flight 9K 1042."""
        return await self.client.start(
            recipient,
            plan or self.plan,
            context=context or {"flight": "9K 1042"},
            key=key or f"9K1042/{recipient.id}",
            campaign="9K1042",
        )

    async def get(self, key: str) -> Notification:
        return await self.client.get(key=key)

    async def events(self, notification_id: str) -> list[Event]:
        return [e async for e in self.client.events() if e.notification_id == notification_id]

    async def kinds(self, notification_id: str) -> list[EventKind]:
        return [e.kind for e in await self.events(notification_id)]

    # -- what the providers saw -----------------------------------------------------------

    def messages_to(self, phone: str) -> list[dict[str, Any]]:
        """Texts created by any simulator for ``phone``."""
        return [m for sim in self.sims for m in sim.messages if m["to"] == phone]

    def calls_to(self, phone: str) -> list[dict[str, Any]]:
        """Calls created by any simulator to ``phone``."""
        return [c for sim in self.sims for c in sim.calls if c["to"] == phone]

    def emails_to(self, address: str) -> list[dict[str, Any]]:
        """Emails accepted by any simulator for ``address``."""
        return [e for sim in self.sims for e in sim.emails if address in e["to"]]

    def sms_requests(self, sim: ProviderSimulator | None = None) -> list[dict[str, Any]]:
        """Every ``POST Messages.json`` a simulator received (refused, dropped or not)."""
        sims = self.sims if sim is None else [sim]
        return [
            r
            for s in sims
            for r in s.requests
            if r["method"] == "POST" and r["path"].endswith("/Messages.json")
        ]

    def callbacks(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Requests the simulators made to the webhooks app (and the customer's browser)."""
        return [c for sim in self.sims for c in sim.callbacks if kind is None or c["kind"] == kind]

    def assert_webhooks_accepted(self) -> None:
        """Every signed callback, inbound text and page visit was answered 2xx: nothing was
        refused (a bad signature, a stale timestamp) or failed."""
        refused = [
            (c["kind"], c["url"], c["status"], c["error"], c["response"][:200])
            for c in self.callbacks()
            if c["status"] is None or not 200 <= c["status"] < 300
        ]
        assert refused == [], refused


class MakeStack(Protocol):
    """The ``make_stack`` fixture: ``await make_stack([Persona(...)], **open_stack_options)``."""

    async def __call__(self, personas: Iterable[Persona] = (), **options: Any) -> Stack: ...


def in_order(notification: Notification) -> list[Attempt]:
    """A notification's attempts in the order they were made (pass, step, re-attempt)."""
    return sorted(notification.attempts, key=lambda a: (a.pass_, a.step, a.reattempt))


def channels_tried(notification: Notification) -> list[str]:
    """The channel of each attempt, in the order they were made."""
    return [a.channel for a in in_order(notification)]


def by_step(notification: Notification, step: int, pass_: int = 0) -> list[Attempt]:
    """A notification's attempts at one step, in re-attempt order."""
    found = [a for a in notification.attempts if (a.pass_, a.step) == (pass_, step)]
    return sorted(found, key=lambda a: a.reattempt)


@contextlib.asynccontextmanager
async def open_stack(
    tmp_path: Path,
    personas: Iterable[Persona] = (),
    *,
    simulators: int = 1,
    channels: ChannelFactory = sandbox_channels,
    plan: Plan | None = None,
    **client_options: Any,
) -> AsyncIterator[Stack]:
    """Serve the webhooks app, start ``simulators`` provider simulators (separate accounts,
    the same customers), build the channels and the client, and tear it all down after."""
    async with Sandbox(
        store=f"sqlite:///{tmp_path / 'outreach.db'}",
        templates=templates_dir(),
        personas=personas,
        start=START,
        simulators=simulators,
        channels=channels,
        **client_options,
    ) as box:
        yield Stack(box, plan or cape_air_plan())
