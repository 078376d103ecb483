"""Both HTTP backends answer and fail in httpx's terms, so adapters map one set of errors."""

from __future__ import annotations

import socket

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from outreach.channels._http import AiohttpPool, HttpPool, make_pool
from outreach.exceptions import ConfigurationError


async def echo(request: web.Request) -> web.Response:
    form = await request.post()
    return web.json_response(
        {"form": [[k, v] for k, v in form.items()], "auth": request.headers.get("Authorization")},
        status=201,
        headers={"X-Message-Id": "m-1"},
    )


async def test_aiohttp_backend_returns_httpx_responses() -> None:
    app = web.Application()
    app.router.add_post("/send", echo)
    async with TestServer(app) as server:
        pool = make_pool(4, backend="aiohttp")
        response = await pool.request(
            "POST",
            str(server.make_url("/send")),
            data={"To": "+16175550123", "StatusCallbackEvent": ["initiated", "ringing"]},
            auth=("AC123", "secret"),
        )
        await pool.aclose()
    assert isinstance(response, httpx.Response)
    assert response.status_code == 201
    assert response.headers["x-message-id"] == "m-1"
    body = response.json()
    assert body["auth"] == "Basic QUMxMjM6c2VjcmV0"
    assert body["form"] == [
        ["To", "+16175550123"],
        ["StatusCallbackEvent", "initiated"],
        ["StatusCallbackEvent", "ringing"],
    ]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_refused_connections_raise_httpx_connect_error(backend: str) -> None:
    pool = make_pool(2, backend=backend)  # type: ignore[arg-type]
    with pytest.raises(httpx.ConnectError):
        await pool.request("POST", f"http://127.0.0.1:{_closed_port()}/x", data={"a": "1"})
    await pool.aclose()


def test_pools_are_sized_and_checked() -> None:
    assert isinstance(make_pool(100), AiohttpPool)  # the fast path is the default
    assert isinstance(make_pool(100, backend="httpx"), HttpPool)
    # 2 connections each
    assert len(make_pool(100, backend="httpx")._clients) == 50  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="'curl'"):
        make_pool(1, backend="curl")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match='httpx backend: pass http="httpx"'):
        make_pool(1, transport=httpx.MockTransport(lambda r: httpx.Response(200)))
