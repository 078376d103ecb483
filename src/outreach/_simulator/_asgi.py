"""A request handed straight to an ASGI app in this process: what an HTTP client and a
loopback server would make of it, without the socket, the HTTP parsing or the client's own
machinery (a tenth of the CPU of an ``httpx.AsyncClient`` over ``httpx.ASGITransport``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from starlette.types import ASGIApp, Message

__all__ = ["AppTransport", "call_app"]

log = logging.getLogger("outreach.simulator")

_CLIENT = ("127.0.0.1", 0)


class AppTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands each request to ``app`` with :func:`call_app`."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        return await call_app(
            self._app,
            request.method,
            str(request.url),
            raw_headers=request.headers.raw,
            content=content,
        )


async def call_app(
    app: ASGIApp,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    raw_headers: Sequence[tuple[bytes, bytes]] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """``method url`` with ``headers`` (or, as an HTTP client sends them, ``raw_headers``,
    the ``Host`` among them) and ``content``, answered by ``app``. An exception of the app is
    logged and answered 500, as a server would."""
    parts = urlsplit(url)
    body = content or b""
    if raw_headers is not None:
        sent = [(k.lower(), v) for k, v in raw_headers]
    else:
        sent = [(b"host", parts.netloc.encode("ascii"))]
        sent += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
        if content is not None:
            sent.append((b"content-length", str(len(body)).encode("ascii")))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": parts.scheme,
        "path": unquote(parts.path) or "/",
        "raw_path": (parts.path or "/").encode("ascii"),
        "query_string": parts.query.encode("ascii"),
        "root_path": "",
        "headers": sent,
        "client": _CLIENT,
        "server": (parts.hostname or "", port),
        "extensions": {},
    }
    request_sent = False
    status: int | None = None
    answer_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal request_sent
        if request_sent:
            return {"type": "http.disconnect"}
        request_sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            answer_headers.extend(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    except Exception:
        log.exception("simulator: %s %s: the app failed", method, url)
        if status is None:
            return httpx.Response(500)
    return httpx.Response(status or 500, headers=answer_headers, content=b"".join(chunks))
