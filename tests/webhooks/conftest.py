"""The webhook tests' fixtures: signing keys, settings and an HTTP client on the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from outreach import AsyncClient
from outreach._settings import Settings
from outreach.webhooks import create_app

from ._helpers import PUBLIC, TWILIO_TOKEN, connect, public_key_b64


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def settings(sendgrid_key: ec.EllipticCurvePrivateKey) -> Settings:
    return Settings(
        public_url=PUBLIC,
        secret_key="test-secret",
        twilio_auth_token=TWILIO_TOKEN,
        sendgrid_webhook_public_key=public_key_b64(sendgrid_key),
    )


@pytest.fixture
async def http(client: AsyncClient, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(create_app(client, settings=settings)) as h:
        yield h
