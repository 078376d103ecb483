"""The documented idioms, checked by type checkers (never run): mypy --strict without the
pydantic plugin, and pyright. ``.ci/run`` checks this file; pytest does not collect it.

A line ending in ``# type: ignore[...]`` must be an error: both checkers are told to report
an ignore that is not needed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, assert_type

import outreach
from outreach import (
    AsyncClient,
    Attempt,
    Client,
    Event,
    FollowUp,
    Hooks,
    Notification,
    Option,
    Paging,
    Plan,
    QuietHours,
    Recipient,
    RetryPolicy,
    Settings,
    Status,
    Step,
    channels_from_settings,
)
from outreach.channels import (
    Channel,
    Console,
    Failover,
    Message,
    Receipt,
    SendGridEmail,
    TwilioSMS,
    TwilioVoice,
)
from outreach.exceptions import ConfigurationError, OutreachError
from outreach.testing import FakeClock, InMemoryChannel, ProviderSimulator, Sandbox
from outreach.webhooks import create_app

# Plans as the README and DESIGN.md write them: lists, and durations as strings.
plan = Plan(
    name="flight-cancelled",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait="15m"),
        Step(channel="email", template="flight_cancelled", wait=timedelta(minutes=30)),
        Step(channel="voice", template="flight_cancelled", wait="1h", retry=RetryPolicy()),
    ],
    options=[
        Option(key="1", label="Rebook me", keywords=["rebook"]),
        Option(key="2", label="Refund", keywords=("refund",)),
    ],
    repeat=1,
    deadline="24h",
    quiet_hours=QuietHours(start="21:00", end="08:00"),
    follow_ups=[FollowUp(when_choice="2", after="3d", channel="voice", template="refund_check")],
)
assert_type(plan.steps[0].wait, timedelta)
assert_type(plan.deadline, timedelta | None)
assert_type(plan.options[0].keywords, tuple[str, ...])
RetryPolicy(attempts=3, initial="2s", max_delay="1m", max_total_delay=timedelta(minutes=5))
QuietHours(start="22:00", end="07:00", media={outreach.Medium.SMS})
loaded: Plan = Plan.load("plan.toml")

# A notice that needs no answer stops at a rung of the ladder; a rung that is not one is an error.
apology = Plan(name="apology", steps=[Step(channel="email", template="apology")], until="delivered")
assert_type(apology.until, Literal["delivered", "engaged", "acknowledged"])
Plan(name="read", steps=[Step(channel="sms", template="t")], until="engaged")
Plan(name="p", steps=[Step(channel="sms", template="t")], until="read")  # type: ignore[arg-type]

# Misspelt and mistyped arguments are errors.
Step(chanel="sms", template="t")  # type: ignore[call-arg]
Step(channel="sms", template="t", wait=15)  # type: ignore[arg-type]
Option(key="1", label="Rebook", keywords="rebook")  # type: ignore[arg-type]

pax = Recipient(
    id="pax-17",
    phone="+16175550123",
    email="a@b.example",
    timezone="America/New_York",
    locale="en",
)
channels: dict[str, Channel] = {
    "sms": Console("sms"),
    "email": InMemoryChannel(name="email"),
    "voice": Console("voice"),
}
settings = Settings(store="memory://", public_url="https://hooks.example")
from_settings: dict[str, Channel] = channels_from_settings(settings)


async def async_idioms() -> None:
    async with AsyncClient(
        store="sqlite:///outreach.db", channels=channels, templates="templates/"
    ) as ox:
        n = await ox.start(
            pax,
            plan,
            context={"flight": "9K 1042"},
            key="9K1042-2026-11-23-pax-17",
            campaign="9K1042-2026-11-23",
            metadata={"pnr": "QX7T2L"},
        )
        assert_type(n, Notification)
        assert_type(await ox.run_due(), int)
        await ox.acknowledge(n.id, via="api", choice="2")
        n = await ox.get(key="9K1042-2026-11-23-pax-17")
        status: Status = n.status
        attempt: Attempt = n.attempts[0]
        async for event in ox.events(since=0):
            assert_type(event, Event)
        await ox.cancel(key="k", reason="flight restored")
        await ox.start(pax, plan, contxt={})  # type: ignore[call-arg]
        print(status, attempt)


def sync_idioms() -> None:
    with Client(store="memory://", channels=channels, templates="templates/") as ox:
        n = ox.start(pax, plan, context={"flight": "9K 1042"}, key="k")
        assert_type(ox.run_due(), int)
        assert_type(ox.acknowledge(n.id, choice="2"), Notification)
        assert_type(ox.events(since=0), list[Event])
        assert_type(ox.list(status="active"), list[Notification])
        ox.acknowledge(n.id, chioce="2")  # type: ignore[call-arg]
    Client(stor="memory://")  # type: ignore[call-arg]


def hooks_and_webhooks(client: AsyncClient) -> None:
    def acknowledged(notification: Notification) -> None:
        print(notification.choice)

    AsyncClient(store="memory://", hooks=Hooks(on_acknowledged=acknowledged))

    async def delivered(notification: Notification) -> None:
        assert_type(notification.reached_by, str | None)
        assert notification.status in (Status.DELIVERED, Status.ENGAGED)

    Hooks(on_delivered=delivered, on_engaged=delivered)
    create_app(client)


async def paging_idioms() -> None:
    """Paging staff when a customer needs a person, as docs/paging.md writes it."""
    duty = Recipient(id="agent-7", phone="+16175550150", email="duty@example.com")
    page = Plan(name="page", steps=[Step(channel="sms", template="page", wait="5m")], urgent=True)
    paging = Paging(plan=page, staff=[duty], respond_within="15m", stagger=timedelta(minutes=5))
    async with AsyncClient(store="memory://", channels=channels, attention=paging) as ox:
        taken = await ox.take("3afe41801e59e6b4", by="agent-7")
        assert_type(taken.taken_by, str | None)
    with Client(store="memory://", channels=channels, attention=paging) as sync:
        assert_type(sync.take("3afe41801e59e6b4", by="agent-7"), outreach.Attention)
    Paging(plan=page, staff=[duty], respond_in="15m")  # type: ignore[call-arg]
    Hooks(on_attention_unanswered=lambda attention: print(attention.id))


def adapters() -> None:
    sms = TwilioSMS(account_sid="AC...", auth_token="token", from_="+15085550199", rate=10.0)
    voice = TwilioVoice(from_="+15085550199", max_in_flight=20, http="httpx")
    email = SendGridEmail(api_key="SG.key", from_email="Cape Air <noreply@example.com>")
    Failover(sms, email)
    print(voice)


async def testing_idioms() -> None:
    clock = FakeClock("2026-11-23T12:00:00+00:00")
    clock.advance("15m")
    clock.advance(timedelta(hours=1))
    assert_type(ProviderSimulator, type[ProviderSimulator])
    assert_type(Sandbox, type[Sandbox])


def errors() -> None:
    try:
        Recipient(id="x", phone="not a number")
    except ConfigurationError:
        pass
    except OutreachError as error:
        print(error)


class WhatsApp(Channel):
    """Your own channel, as docs/channels.md writes it."""

    medium = outreach.Medium.SMS

    def __init__(self, *, token: str, name: str = "whatsapp") -> None:
        self.name, self._token = name, token

    async def send(self, message: Message) -> Receipt:
        print(message.to, message.body)
        return Receipt(provider_id="wamid.123")


AsyncClient(store="memory://", channels={"sms": WhatsApp(token="t")})
