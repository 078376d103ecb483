"""The webhooks app as a whole: configuration checks, health, the signed URL under a mount."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.routing import Mount

from outreach import AsyncClient, Plan
from outreach._settings import Settings
from outreach._webhooks._common import route_path
from outreach.exceptions import ConfigurationError
from outreach.testing import FakeClock
from outreach.webhooks import create_app

from ._helpers import PUBLIC, connect, inbound, start, twilio_post

# --- configuration ------------------------------------------------------------------------


async def test_refuses_to_start_without_a_secret_key(
    clock: FakeClock, templates_dir: Path, settings: Settings
) -> None:
    keyless = AsyncClient(
        store="memory://", templates=templates_dir, clock=clock, settings=Settings(secret_key=None)
    )
    with pytest.raises(ConfigurationError, match="OUTREACH_SECRET_KEY"):
        create_app(keyless, settings=settings)


@pytest.mark.parametrize("value", ["", " "])
async def test_refuses_to_start_with_an_empty_secret_key(
    client: AsyncClient, settings: Settings, value: str
) -> None:
    from pydantic import SecretStr

    client.settings = client.settings.model_copy(update={"secret_key": SecretStr(value)})
    with pytest.raises(ConfigurationError, match="OUTREACH_SECRET_KEY"):
        create_app(client, settings=settings)


async def test_refuses_to_start_without_provider_credentials(
    client: AsyncClient, settings: Settings
) -> None:
    with pytest.raises(ConfigurationError, match="OUTREACH_TWILIO_AUTH_TOKEN"):
        create_app(client, settings=settings.model_copy(update={"twilio_auth_token": None}))
    with pytest.raises(ConfigurationError, match="OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        create_app(
            client, settings=settings.model_copy(update={"sendgrid_webhook_public_key": None})
        )
    with pytest.raises(ConfigurationError, match="not a public key"):
        create_app(
            client, settings=settings.model_copy(update={"sendgrid_webhook_public_key": "x"})
        )
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    rsa_key = base64.b64encode(rsa_der).decode()
    with pytest.raises(ConfigurationError, match="P-256"):
        create_app(
            client, settings=settings.model_copy(update={"sendgrid_webhook_public_key": rsa_key})
        )


async def test_a_provider_left_out_needs_no_credentials_and_has_no_routes(
    client: AsyncClient, settings: Settings
) -> None:
    bare = settings.model_copy(
        update={"twilio_auth_token": None, "sendgrid_webhook_public_key": None}
    )
    async with connect(create_app(client, settings=bare, twilio=False, sendgrid=False)) as http:
        assert (await http.post("/twilio/sms", data=inbound("1"))).status_code == 404
        assert (await http.post("/sendgrid/events", content=b"[]")).status_code == 404
        assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_insecure_dev_mode_says_so_loudly_and_skips_signatures(
    client: AsyncClient, plan: Plan, caplog: pytest.LogCaptureFixture
) -> None:
    bare = Settings(public_url=PUBLIC)
    with caplog.at_level(logging.WARNING, logger="outreach.webhooks"):
        app = create_app(client, settings=bare, insecure_dev=True)
    assert any("INSECURE" in r.message and r.levelno == logging.WARNING for r in caplog.records)
    n = await start(client, plan)
    async with connect(app) as http:
        response = await http.post("/twilio/sms", data=inbound("2"))  # unsigned
    assert response.status_code == 200
    assert (await client.get(n.id)).choice == "2"


async def test_healthz(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- the URL providers sign -----------------------------------------------------------------


async def test_signature_covers_the_mount_point(
    client: AsyncClient, settings: Settings, plan: Plan
) -> None:
    n = await start(client, plan)
    mounted = settings.model_copy(update={"public_url": f"{PUBLIC}/hooks"})
    host = Starlette(routes=[Mount("/hooks", create_app(client, settings=mounted))])
    async with connect(host) as http:
        params = inbound("refund")
        response = await twilio_post(
            http, "/hooks/twilio/sms", params, signed_url=f"{PUBLIC}/hooks/twilio/sms"
        )
        assert response.status_code == 200
        without_prefix = await twilio_post(
            http, "/hooks/twilio/sms", inbound("1"), signed_url=f"{PUBLIC}/twilio/sms"
        )
        assert without_prefix.status_code == 403  # signed for a URL Twilio never called
    assert (await client.get(n.id)).choice == "2"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"path": "/twilio/sms", "raw_path": b"/twilio/sms"}, "/twilio/sms"),
        (
            {"path": "/hooks/twilio/status", "raw_path": b"/hooks/twilio/status",
             "root_path": "/hooks", "query_string": b"attempt=a%2Eb&x=1+2"},
            "/twilio/status?attempt=a%2Eb&x=1+2",
        ),
        (  # a server that keeps root_path out of path
            {"path": "/ack/t", "raw_path": b"/ack/t", "root_path": "/hooks"},
            "/ack/t",
        ),
        ({"path": "/a b"}, "/a%20b"),
    ],
)  # fmt: skip
def test_route_path_is_the_raw_path_and_query_below_the_mount(
    scope: dict[str, Any], expected: str
) -> None:
    assert route_path(scope) == expected
