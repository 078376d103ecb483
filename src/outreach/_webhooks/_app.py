"""``create_app``: configuration checks and the route table."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from outreach._client import AsyncClient
from outreach._settings import Settings, checked_secret_key
from outreach._telemetry import WebhookSpans
from outreach._urls import PublicUrls
from outreach._webhooks import _sendgrid, _twilio
from outreach._webhooks._brand import Brand
from outreach._webhooks._common import (
    SIGHTED,
    Ctx,
    Rejected,
    SendGridVerifier,
    TwilioVerifier,
)
from outreach._webhooks._pages import Pages
from outreach.exceptions import ConfigurationError, OutreachError

log = logging.getLogger("outreach.webhooks")

Handler = Callable[[Ctx, Request], Awaitable[Response]]

HEALTH_TIMEOUT = 2.0
"""Seconds ``/healthz`` waits for the store before it says the store is unreachable."""


def _secret(value: str | SecretStr | None) -> str | None:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return text.strip() if text and text.strip() else None


def create_app(
    client: AsyncClient,
    *,
    settings: Settings | None = None,
    insecure_dev: bool = False,
    insecure_dev_key: bool = False,
    twilio: bool = True,
    sendgrid: bool = True,
    twilio_auth_tokens: Sequence[str | SecretStr] | None = None,
    brand: Brand | None = None,
) -> Starlette:
    """The webhooks ASGI app: Twilio and SendGrid callbacks, acknowledgement pages.

    Routes: ``POST /twilio/sms``, ``POST /twilio/status``, ``POST /twilio/voice/{attempt_id}``
    and ``.../gather``, ``POST /sendgrid/events``, ``GET|POST /ack/{token}``,
    ``GET|POST /unsubscribe/{token}``, ``GET /healthz``.

    The app does not own ``client``: open it (``async with client``) in the host's lifespan.
    ``settings`` (default: the client's) supplies the public URL that providers sign, the
    Twilio auth token and the SendGrid verification key. ``twilio=False`` / ``sendgrid=False``
    leave that provider's routes out (and its credentials unneeded);
    ``twilio_auth_tokens`` lists the auth tokens of several Twilio accounts (default: the
    setting's one). Without the secret key or a provider's credentials the app refuses to
    start (``ConfigurationError``), unless ``insecure_dev=True``: then signatures are NOT
    checked, for local experiments only. ``insecure_dev_key=True`` accepts a client without a
    secret key alone (its links die with the process), for local experiments too. A key that
    is set but empty is always refused. ``brand`` (a :class:`Brand`) names the sender on the
    link pages, says whom to contact, adds a logo and colours, or points to the host's own
    page templates (default: ``OUTREACH_BRAND_NAME``, ``_CONTACT``, ``_LOGO_URL``).
    """
    settings = settings or client.settings
    urls = PublicUrls(settings.public_url)
    problems = []
    if checked_secret_key(client.settings.secret_key) is None and not insecure_dev_key:
        problems.append(
            "no secret key: set OUTREACH_SECRET_KEY (the client signs acknowledgement and "
            "unsubscribe links with it; without it, links die with the process)"
        )
    tokens = [
        token
        for token in map(
            _secret,
            twilio_auth_tokens if twilio_auth_tokens is not None else [settings.twilio_auth_token],
        )
        if token
    ]
    if twilio and not tokens:
        problems.append(
            "no Twilio auth token to verify Twilio's signatures: set OUTREACH_TWILIO_AUTH_TOKEN "
            "(or create_app(..., twilio=False) to leave the Twilio routes out)"
        )
    public_key = _secret(settings.sendgrid_webhook_public_key)
    if sendgrid and not public_key:
        problems.append(
            "no SendGrid verification key: set OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY (Mail "
            "Settings > Signed Event Webhook) or create_app(..., sendgrid=False)"
        )
    if problems and not insecure_dev:
        raise ConfigurationError("the webhooks app cannot start: " + "; ".join(problems))
    if insecure_dev:
        log.warning(
            "INSECURE DEVELOPMENT MODE: webhook signatures are NOT checked; anyone who can reach "
            "this app can acknowledge, opt out and fake delivery reports. Never expose it.%s",
            (" Also: " + "; ".join(problems)) if problems else "",
        )
    ctx = Ctx(
        client=client,
        inbound=client.inbound,
        settings=settings,
        urls=urls,
        twilio=None if insecure_dev else TwilioVerifier(tokens, urls),
        sendgrid=(
            None
            if insecure_dev or public_key is None
            else SendGridVerifier(public_key, settings.signature_max_age, client)
        ),
    )
    pages = Pages(brand or Brand.from_settings(settings))

    def bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            sighted: list[str] = []
            token = SIGHTED.set(sighted)
            try:
                return await handler(ctx, request)
            except BaseException:
                for key in sighted:  # nothing took effect: let the provider's retry through
                    await ctx.inbound.forget_sighting(key)
                raise
            finally:
                SIGHTED.reset(token)

        endpoint.__name__ = getattr(handler, "__name__", "endpoint")
        return endpoint

    async def healthz(request: Request) -> Response:
        return await _healthz(ctx, request)

    routes = [Route("/healthz", healthz, methods=["GET"])]
    if twilio:
        routes += [
            Route("/twilio/sms", bind(_twilio.inbound_sms), methods=["POST"]),
            Route("/twilio/status", bind(_twilio.status_callback), methods=["POST"]),
            Route("/twilio/voice/{attempt_id}", bind(_twilio.voice), methods=["POST"]),
            Route("/twilio/voice/{attempt_id}/gather", bind(_twilio.gather), methods=["POST"]),
        ]
    if sendgrid:
        routes.append(Route("/sendgrid/events", bind(_sendgrid.events), methods=["POST"]))
    routes += [
        Route("/ack/{token}", bind(pages.ack_page), methods=["GET"]),
        Route("/ack/{token}", bind(pages.ack), methods=["POST"]),
        Route("/unsubscribe/{token}", bind(pages.unsubscribe_page), methods=["GET"]),
        Route("/unsubscribe/{token}", bind(pages.unsubscribe), methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={Rejected: _rejected},
        middleware=[Middleware(WebhookSpans, telemetry=client.telemetry)],
    )


async def _healthz(ctx: Ctx, request: Request) -> Response:
    """200 when the store answers a cheap read within ``HEALTH_TIMEOUT``; else 503 and why
    (a load balancer then sends requests elsewhere)."""
    try:
        await asyncio.wait_for(ctx.client.store.schema_version(), HEALTH_TIMEOUT)
    except TimeoutError:
        reason = f"the store did not answer within {HEALTH_TIMEOUT:g} s"
    except OutreachError as error:
        reason = str(error)
    else:
        return JSONResponse({"status": "ok"})
    log.warning("health check failed: %s", reason)
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Rejected)
    return PlainTextResponse(exc.detail, status_code=exc.status_code)
