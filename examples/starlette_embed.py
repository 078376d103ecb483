"""Mount the webhooks inside your own Starlette (or FastAPI) service.

    uvicorn --factory examples.starlette_embed:build

The host owns the client: it opens it in its lifespan and runs the escalations beside the web
server. Providers sign the public URL, so ``OUTREACH_PUBLIC_URL`` must include the mount
path (``https://api.example.com/outreach``). FastAPI works the same way:
``app.mount("/outreach", create_app(client))``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from outreach import AsyncClient, Settings, channels_from_settings
from outreach.webhooks import create_app

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def build(settings: Settings | None = None) -> Starlette:
    """Your service: its own routes, plus outreach's webhooks under ``/outreach``."""
    settings = settings or Settings()
    channels = channels_from_settings(settings)
    client = AsyncClient(channels=channels, templates=TEMPLATES, settings=settings)
    hooks = create_app(
        client,
        twilio="sms" in channels or "voice" in channels,
        sendgrid="email" in channels,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with client:
            escalations = asyncio.create_task(client.run())
            try:
                yield
            finally:
                escalations.cancel()

    async def cancelled_flights(request: Request) -> JSONResponse:
        """One of your own endpoints, using the same client."""
        notifications = await client.list(campaign=request.query_params.get("campaign"))
        return JSONResponse({n.key or n.id: n.status.value for n in notifications})

    return Starlette(
        routes=[Route("/notifications", cancelled_flights), Mount("/outreach", hooks)],
        lifespan=lifespan,
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(build(), host="127.0.0.1", port=8000)
