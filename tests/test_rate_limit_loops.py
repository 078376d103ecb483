"""Rate limits through the real adapters (respx) and the runner, on a FakeClock: a 429 that
asks for no delay, a reset already gone by, or no hint at all never makes a tight loop, and
rate limiting of one step ends with the step failed and the next one sent."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from outreach import AsyncClient, AttemptStatus, EventKind, Plan, Recipient, Status, Step
from outreach._settings import Settings
from outreach.channels import Channel
from outreach.channels.sendgrid import SendGridEmail
from outreach.channels.twilio import TwilioSMS
from outreach.testing import FakeClock, InMemoryChannel

SID = "AC8a1ba3363e6cebfb092cc891c515ff56"
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
MAIL_SEND = "https://api.sendgrid.com/v3/mail/send"
PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
FIXTURES = Path(__file__).parent / "fixtures"
ENOUGH = 200
"""Requests a test answers with 429 before giving in: a loop that ignores the policy ends."""


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACCOUNT_SID", "AUTH_TOKEN", "FROM", "MESSAGING_SERVICE_SID", "BASE_URL"):
        monkeypatch.delenv(f"OUTREACH_TWILIO_{name}", raising=False)
    for name in ("API_KEY", "FROM", "BASE_URL"):
        monkeypatch.delenv(f"OUTREACH_SENDGRID_{name}", raising=False)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def settings() -> Settings:
    return Settings(
        twilio_account_sid=SID,
        twilio_auth_token="f3b2c1d0e9a8f7b6c5d4e3f2a1b0c9d8",
        twilio_from="+16175550100",
        sendgrid_api_key="SG.test-key.s3cret",
        sendgrid_from="noreply@capeair.example",
        public_url="https://hooks.example.com",
    )


def plan(*channels: str) -> Plan:
    return Plan(
        name="p",
        steps=[Step(channel=c, template="flight_cancelled", wait="15m") for c in channels],
        deadline="24h",
    )


Refusal = Callable[[FakeClock], httpx.Response]


def refusing(clock: FakeClock, refusal: Refusal, success: httpx.Response) -> Any:
    """A respx side effect answering ``refusal(clock)`` to the first ``ENOUGH`` requests."""
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return refusal(clock) if calls <= ENOUGH else success

    return answer


def twilio_429(headers: dict[str, str]) -> Refusal:
    body = {"code": 20429, "message": "Too Many Requests", "status": 429}
    return lambda clock: httpx.Response(429, json=body, headers=headers)


def sendgrid_429_reset_gone_by(clock: FakeClock) -> httpx.Response:
    reset = int((clock.now() - timedelta(minutes=5)).timestamp())
    body = {"errors": [{"field": None, "message": "too many requests"}]}
    return httpx.Response(429, json=body, headers={"X-RateLimit-Reset": str(reset)})


def twilio_created() -> httpx.Response:
    resource = json.loads((FIXTURES / "twilio_message.json").read_text())
    return httpx.Response(201, json=resource | {"status": "queued"})


TWILIO = ("sms", MESSAGES, lambda: TwilioSMS(http="httpx", settings=settings()), twilio_created())
SENDGRID = (
    "email",
    MAIL_SEND,
    lambda: SendGridEmail(http="httpx", settings=settings()),
    httpx.Response(202, headers={"X-Message-Id": "x-msg-1"}),
)


@pytest.fixture
async def open_client(
    clock: FakeClock, templates_dir: Path
) -> AsyncIterator[Callable[[dict[str, Channel]], Any]]:
    opened: list[AsyncClient] = []

    async def open_with(channels: dict[str, Channel]) -> AsyncClient:
        ox = AsyncClient(
            store="memory://",
            channels=channels,
            templates=templates_dir,
            clock=clock,
            settings=settings(),
        )
        await ox.open()
        opened.append(ox)
        return ox

    yield open_with
    for ox in opened:
        await ox.close()


async def run_while_due(ox: AsyncClient, clock: FakeClock, key: str, *, limit: int = 500) -> None:
    """``run_due()``, then jump to the next due time, until nothing is due (or ``limit`` runs)."""
    for _ in range(limit):
        await ox.run_due()
        n = await ox.get(key=key)
        if n.due_at is None or n.status.is_terminal:
            return
        if n.due_at > clock.now():
            clock.set(n.due_at)


@pytest.mark.parametrize(
    ("provider", "refusal"),
    [
        pytest.param(TWILIO, twilio_429({"Retry-After": "0"}), id="twilio-retry-after-0"),
        pytest.param(SENDGRID, sendgrid_429_reset_gone_by, id="sendgrid-reset-in-the-past"),
        pytest.param(TWILIO, twilio_429({}), id="twilio-no-header"),
    ],
)
async def test_a_429_forever_is_bounded_by_the_retry_policy_and_the_next_step_is_sent(
    router: respx.MockRouter,
    open_client: Callable[[dict[str, Channel]], Any],
    clock: FakeClock,
    provider: tuple[str, str, Callable[[], Channel], httpx.Response],
    refusal: Refusal,
) -> None:
    """A bounded number of requests, ``run_due()`` returns, the step fails as transient and
    the next step goes out within a minute, long before the deadline."""
    limited, url, adapter, success = provider
    other = "email" if limited == "sms" else "sms"
    route = router.post(url).mock(side_effect=refusing(clock, refusal, success))
    next_channel = InMemoryChannel(name=other)
    ox = await open_client({limited: adapter(), other: next_channel})
    n = await ox.start(PAX, plan(limited, other), context={"flight": "9K 1042"}, key="k")

    await run_while_due(ox, clock, "k")

    retry = n.plan.retry
    assert route.call_count == retry.attempts  # not hundreds: each re-attempt waited
    n = await ox.get(key="k")
    tries = [a for a in n.attempts if a.channel == limited]
    assert [a.status for a in tries] == [AttemptStatus.FAILED] * retry.attempts
    for earlier, later in itertools.pairwise(tries):
        assert earlier.retry_at is not None
        assert later.created_at - earlier.updated_at >= timedelta(seconds=1)
    assert tries[-1].retry_at is None
    [logged] = [
        e
        async for e in ox.events()
        if e.kind is EventKind.ATTEMPT and e.attempt_id == tries[-1].id and "failure" in e.data
    ]
    assert logged.data["failure"] == "transient"
    assert len(next_channel.outbox) == 1
    [next_step] = [a for a in n.attempts if a.channel == other]
    assert next_step.status is AttemptStatus.SENT
    assert next_step.sent_at is not None
    assert n.deadline_at is not None
    assert next_step.sent_at < n.created_at + timedelta(minutes=1) < n.deadline_at
    assert n.status is Status.EXHAUSTED  # no answer to that step either; not expired
