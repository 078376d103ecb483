"""The webhooks ASGI app: provider callbacks, customer replies and acknowledgement pages.

Mount it in your own ASGI app, or serve it alone; either way the host opens the client::

    client = AsyncClient(...)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with client:
            yield

    app = Starlette(lifespan=lifespan, routes=[Mount("/hooks", create_app(client))])

with ``OUTREACH_PUBLIC_URL=https://example.com/hooks``: providers sign the public URL, so it
must name the mount point too.
"""

from __future__ import annotations

from outreach._webhooks._app import create_app
from outreach._webhooks._brand import Brand

__all__ = ["Brand", "create_app"]
