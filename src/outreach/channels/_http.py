"""The HTTP layer the provider adapters share: long-lived pools behind one small interface.

Two backends answer ``request()`` with an ``httpx.Response`` and fail with httpx's exception
classes, so the adapters map one vocabulary of errors whichever runs underneath:

- ``"aiohttp"`` (the default): one aiohttp session; about a quarter of httpx's CPU per request
  here, and what twilio-python's own async client uses.
- ``"httpx"`` (respx intercepts it in tests; a mock ``transport`` needs it): many small clients
  used in turn.
  One ``httpx.AsyncClient`` with many requests in flight spends most of its time scanning its
  own pool (measured here: about 100 msg/s at 10 ms CPU per request with 100 in flight);
  clients of two connections each keep every scan short.

Connections and the TLS context live as long as the channel, so no message pays for a
handshake or a CA bundle load of its own.
"""

from __future__ import annotations

import base64
import itertools
import math
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlencode

import httpx

from outreach.exceptions import ConfigurationError

if TYPE_CHECKING:
    import aiohttp

Backend = Literal["httpx", "aiohttp"]

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=30.0)
"""Neither provider SDK sets timeouts; a hung provider must not hang a runner."""

CONNECTIONS_PER_SHARD = 2


class Pool(Protocol):
    """What an adapter needs from HTTP."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; raise httpx's exceptions on transport failures."""
        ...

    async def aclose(self) -> None:
        """Close every connection."""
        ...


def make_pool(
    max_in_flight: int,
    *,
    backend: Backend = "aiohttp",
    transport: httpx.AsyncBaseTransport | None = None,
) -> Pool:
    """A pool with room for ``max_in_flight`` concurrent requests."""
    if backend == "aiohttp":
        if transport is not None:
            raise ConfigurationError('a mock transport needs the httpx backend: pass http="httpx"')
        return AiohttpPool(connections=max_in_flight)
    if backend != "httpx":
        raise ConfigurationError(f"unknown HTTP backend {backend!r}; use 'httpx' or 'aiohttp'")
    connections = min(CONNECTIONS_PER_SHARD, max_in_flight)
    return HttpPool(
        shards=math.ceil(max_in_flight / connections), connections=connections, transport=transport
    )


class HttpPool:
    """``shards`` httpx clients of ``connections`` each, used in turn.

    ``transport`` (tests, benchmarks) replaces the network for every shard.
    """

    def __init__(
        self,
        *,
        shards: int = 20,
        connections: int = 5,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        tls = ssl.create_default_context()  # one CA bundle load for every shard
        self._clients = [
            httpx.AsyncClient(limits=limits, timeout=timeout, transport=transport, verify=tls)
            for _ in range(max(shards, 1))
        ]
        self._turn = itertools.cycle(self._clients)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request on the next shard."""
        client = next(self._turn)
        return await client.request(method, url, headers=headers, data=data, json=json, auth=auth)

    async def aclose(self) -> None:
        """Close every shard's connections."""
        for client in self._clients:
            await client.aclose()


class AiohttpPool:
    """One aiohttp session, opened on first use (it belongs to the running loop)."""

    def __init__(self, *, connections: int, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._basic: dict[tuple[str, str], str] = {}

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            sock_connect=self._timeout.connect, sock_read=self._timeout.read
        )
        connector = aiohttp.TCPConnector(limit=self._connections, ssl=ssl.create_default_context())
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    def _authorization(self, auth: tuple[str, str]) -> str:
        header = self._basic.get(auth)
        if header is None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            header = self._basic[auth] = f"Basic {token}"
        return header

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        import aiohttp

        session = self._session or self._open()
        sent = dict(headers or {})
        body: str | None = None
        if auth is not None:
            sent["Authorization"] = self._authorization(auth)
        if data is not None:
            body = urlencode(data, doseq=True)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            async with session.request(method, url, headers=sent, data=body, json=json) as answer:
                content = await answer.read()
                status, received = answer.status, list(answer.headers.items())
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc)) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc)) from exc  # the request may have arrived
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        except aiohttp.InvalidURL as exc:
            raise httpx.InvalidURL(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc  # ambiguous: maybe sent
        # No httpx.Request: parsing the URL again costs more than the rest of the answer,
        # and the adapters read only the status, headers and body.
        return httpx.Response(status, headers=received, content=content)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
