"""The simulator's own outgoing HTTP: callbacks, webhooks and a customer's browser."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from starlette.types import ASGIApp

from outreach._simulator._asgi import call_app

__all__ = ["Outbound"]

log = logging.getLogger("outreach.simulator")

_TIMEOUT = httpx.Timeout(15.0)  # Twilio gives a webhook 15 s
_RESPONSE_KEPT = 20_000


class Outbound:
    """Makes the simulator's requests and records each one in ``log`` (``sim.callbacks``):
    over HTTP (through ``transport``, if given), or straight into ``app`` when given one.

    A failure (connection refused, timeout) is recorded, never raised: a provider does not
    crash because a customer's server is down.
    """

    def __init__(
        self,
        now: Callable[[], datetime],
        log: list[dict[str, Any]],
        transport: httpx.AsyncBaseTransport | None,
        app: ASGIApp | None = None,
    ) -> None:
        self.now = now
        """When a request is made (the simulated time), for the log."""
        self._log = log
        self._transport = transport
        self._app = app
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # httpx pools belong to one event loop: a new loop gets a new client.
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=_TIMEOUT, follow_redirects=False
            )
            self._loop = loop
        return self._client

    async def request(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        record: dict[str, Any] | None = None,
    ) -> httpx.Response | None:
        """Send one request; the response, or None when there was none (recorded either way).

        ``record`` adds fields to the log entry (the form ``params`` or the ``json`` sent).
        """
        entry: dict[str, Any] = {
            "at": self.now(),
            "kind": kind,
            "method": method,
            "url": url,
            **(record or {}),
            "status": None,
            "error": None,
            "response": "",
        }
        self._log.append(entry)
        try:
            if self._app is not None:
                response = await call_app(self._app, method, url, headers=headers, content=content)
            else:
                response = await self._http().request(method, url, headers=headers, content=content)
        except httpx.HTTPError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("simulator %s %s %s failed: %s", kind, method, url, entry["error"])
            return None
        entry["status"] = response.status_code
        entry["response"] = response.text[:_RESPONSE_KEPT]
        if not response.is_success:
            log.warning(
                "simulator %s %s %s answered HTTP %s", kind, method, url, response.status_code
            )
        return response

    async def aclose(self) -> None:
        """Close the connection pool (in the loop that opened it)."""
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()
