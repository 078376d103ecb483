from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from outreach import AsyncClient, FollowUp, Option, Plan, QuietHours, Step
from outreach.testing import FakeClock, InMemoryChannel

settings.register_profile(
    "ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TEMPLATES = Path(__file__).parent.parent / "templates"


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_KEY", "test-secret")


@pytest.fixture(autouse=True)
def _no_real_provider_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDKs' own variables are a settings fall-back: a developer's real credentials in
    the shell must never reach a test."""
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "SENDGRID_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _our_loggers_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    """``outreach worker``/``serve`` run in-process configure the ``outreach`` (and uvicorn's)
    loggers, as they should in a process of their own: each test gets them back as found."""
    for name in ("outreach", "uvicorn"):
        logger = logging.getLogger(name)
        for attribute in ("handlers", "level", "propagate"):
            value = getattr(logger, attribute)
            monkeypatch.setattr(
                logger, attribute, list(value) if attribute == "handlers" else value
            )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock("2026-11-23T14:00:00+00:00")


@pytest.fixture
def channels() -> dict[str, InMemoryChannel]:
    return {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}


@pytest.fixture
def plan() -> Plan:
    return Plan(
        name="flight-cancelled",
        steps=[
            Step(channel="sms", template="flight_cancelled", wait="15m"),
            Step(channel="email", template="flight_cancelled", wait="30m"),
            Step(channel="voice", template="flight_cancelled", wait="1h"),
        ],
        options=[
            Option(key="1", label="Rebook me", keywords=["rebook"]),
            Option(key="2", label="Refund", keywords=["refund"]),
            Option(key="3", label="Taxi to my destination", keywords=["taxi"]),
        ],
        deadline="24h",
        quiet_hours=QuietHours(start="21:00", end="08:00"),
        follow_ups=[
            FollowUp(when_choice="2", after="3d", channel="voice", template="refund_check")
        ],
    )


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    """A private copy of the example templates, safe to edit in a test."""
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    return copy


@pytest.fixture
async def client(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        store="memory://", channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        yield ox


POSTGRES_URL = os.environ.get("OUTREACH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL. Unreachable, it fails the run in CI and skips locally."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as db:
            db.execute("SELECT 1")
    except Exception as error:  # psycopg missing, or no server
        reason = f"PostgreSQL at {POSTGRES_URL} is unavailable: {error}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI needs it: start the server)")
        pytest.skip(f"{reason} (CI fails here; start it with pg_ctlcluster)")
    return POSTGRES_URL


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A schema of this test's own (the store creates it), dropped afterwards."""
    import psycopg

    schema = f"outreach_test_{uuid.uuid4().hex}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
