"""The HTTP layer the provider adapters share: long-lived, sharded httpx clients.

One ``httpx.AsyncClient`` with many requests in flight spends most of its time scanning its own
connection pool (httpcore's pool is O(connections) per request; measured on this machine: about
100 msg/s at 10 ms CPU per request with 100 in flight). Spreading the same load over many small
clients keeps each scan short. Clients, connections and the TLS context live as long as the
channel, so no message pays for a handshake or a CA bundle load of its own.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=30.0)
"""Neither provider SDK sets timeouts; a hung provider must not hang a runner."""


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
        self.capacity = len(self._clients) * connections
        """How many requests can be in flight without queueing for a connection."""

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
