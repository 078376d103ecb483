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


def refusing(refusal: Callable[[], httpx.Response], success: httpx.Response) -> Any:
    """A respx side effect answering ``refusal()`` to the first ``ENOUGH`` requests."""
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return refusal() if calls <= ENOUGH else success

    return answer


def twilio_429(headers: dict[str, str]) -> httpx.Response:
    body = {"code": 20429, "message": "Too Many Requests", "status": 429}
    return httpx.Response(429, json=body, headers=headers)


def twilio_created() -> httpx.Response:
    resource = json.loads((FIXTURES / "twilio_message.json").read_text())
    return httpx.Response(201, json=resource | {"status": "queued"})


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


def assert_step_failed_as_transient(events: list[Any], attempt_id: str) -> None:
    [logged] = [
        e
        for e in events
        if e.kind is EventKind.ATTEMPT and e.attempt_id == attempt_id and "failure" in e.data
    ]
    assert logged.data["failure"] == "transient"


async def test_twilio_429_with_retry_after_zero_is_bounded_and_escalates_to_email(
    router: respx.MockRouter,
    open_client: Callable[[dict[str, Channel]], Any],
    clock: FakeClock,
) -> None:
    route = router.post(MESSAGES).mock(
        side_effect=refusing(lambda: twilio_429({"Retry-After": "0"}), twilio_created())
    )
    email = InMemoryChannel(name="email")
    ox = await open_client({"sms": TwilioSMS(settings=settings()), "email": email})
    start = clock.now()
    n = await ox.start(PAX, plan("sms", "email"), context={"flight": "9K 1042"}, key="k")

    await run_while_due(ox, clock, "k")

    retry = n.plan.retry
    assert route.call_count == retry.attempts  # not hundreds: each re-attempt waited
    n = await ox.get(key="k")
    sms = [a for a in n.attempts if a.channel == "sms"]
    assert len(sms) == retry.attempts
    for earlier, later in itertools.pairwise(sms):
        assert earlier.retry_at is not None
        assert later.created_at - earlier.updated_at >= timedelta(seconds=1)
    assert sms[-1].status is AttemptStatus.FAILED
    assert sms[-1].retry_at is None
    assert_step_failed_as_transient([e async for e in ox.events()], sms[-1].id)
    assert len(email.outbox) == 1
    [email_attempt] = [a for a in n.attempts if a.channel == "email"]
    assert email_attempt.sent_at is not None
    assert email_attempt.sent_at - start < timedelta(minutes=1)


async def test_sendgrid_429_with_a_reset_in_the_past_is_bounded_and_escalates_to_sms(
    router: respx.MockRouter,
    open_client: Callable[[dict[str, Channel]], Any],
    clock: FakeClock,
) -> None:
    def reset_gone_by() -> httpx.Response:
        reset = int((clock.now() - timedelta(minutes=5)).timestamp())
        body = {"errors": [{"field": None, "message": "too many requests"}]}
        return httpx.Response(429, json=body, headers={"X-RateLimit-Reset": str(reset)})

    accepted = httpx.Response(202, headers={"X-Message-Id": "x-msg-1"})
    route = router.post(MAIL_SEND).mock(side_effect=refusing(reset_gone_by, accepted))
    sms = InMemoryChannel(name="sms")
    ox = await open_client({"email": SendGridEmail(settings=settings()), "sms": sms})
    n = await ox.start(PAX, plan("email", "sms"), context={"flight": "9K 1042"}, key="k")

    await run_while_due(ox, clock, "k")

    assert route.call_count == n.plan.retry.attempts
    n = await ox.get(key="k")
    emails = [a for a in n.attempts if a.channel == "email"]
    assert [a.status for a in emails] == [AttemptStatus.FAILED] * n.plan.retry.attempts
    assert_step_failed_as_transient([e async for e in ox.events()], emails[-1].id)
    assert len(sms.outbox) == 1


async def test_twilio_429_without_a_header_is_bounded_and_escalates_before_the_deadline(
    router: respx.MockRouter,
    open_client: Callable[[dict[str, Channel]], Any],
    clock: FakeClock,
) -> None:
    route = router.post(MESSAGES).mock(
        side_effect=refusing(lambda: twilio_429({}), twilio_created())
    )
    email = InMemoryChannel(name="email")
    ox = await open_client({"sms": TwilioSMS(settings=settings()), "email": email})
    n = await ox.start(PAX, plan("sms", "email"), context={"flight": "9K 1042"}, key="k")

    await run_while_due(ox, clock, "k")

    assert route.call_count == n.plan.retry.attempts
    n = await ox.get(key="k")
    assert len(n.attempts) == n.plan.retry.attempts + 1  # the SMS tries, then the email
    assert n.status is Status.EXHAUSTED  # no answer to the email either; not expired
    assert len(email.outbox) == 1
    [email_attempt] = [a for a in n.attempts if a.channel == "email"]
    assert email_attempt.status is AttemptStatus.SENT
    assert email_attempt.sent_at is not None
    assert n.deadline_at is not None
    assert email_attempt.sent_at < n.created_at + timedelta(minutes=1) < n.deadline_at
