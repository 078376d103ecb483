"""Serve an ASGI app over loopback HTTP with uvicorn, in this event loop or in a thread.

The socket is bound before uvicorn starts (port 0: the OS picks a free port), so the URL is
known at once. uvicorn's signal handlers and logging configuration are left alone: this runs
inside tests, demos and other people's programs. Connections are tracked by peer address so a
handler can drop one without answering (:class:`Drop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import Future
from datetime import timedelta
from typing import Any, TypeVar

import uvicorn
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from outreach._clock import SystemClock

__all__ = ["Drop", "LoopbackServer"]

T = TypeVar("T")

Connections = dict[tuple[str, int], asyncio.Transport]

_CONNECTIONS_KEY = "outreach.simulator.connections"
_STARTUP_TIMEOUT = 10.0
_WALL_CLOCK = SystemClock()  # serving happens in real time, whatever the simulated clock says
_POLL = timedelta(milliseconds=2)


def _protocol(connections: Connections) -> type[H11Protocol]:
    """uvicorn's h11 protocol, remembering each connection's transport by peer address, and
    writing no access log line (the host's ``uvicorn.access`` logger is its own)."""

    class Tracked(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.access_log = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if self.client is not None:
                connections[self.client] = transport

        def connection_lost(self, exc: Exception | None) -> None:
            if self.client is not None:
                connections.pop(self.client, None)
            super().connection_lost(exc)

    return Tracked


class _Server(uvicorn.Server):
    """uvicorn without signal handling (the host program owns its signals) that stops at
    once when told to, instead of on its next 0.1 s tick plus a fixed 0.1 s pause: tests
    start and stop servers by the dozen."""

    def __init__(self, config: uvicorn.Config, connections: Connections) -> None:
        super().__init__(config)
        self._connections = connections
        self._exit: asyncio.Event | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return

    def exit(self) -> None:
        """Stop serving (from the server's loop)."""
        self.should_exit = True
        if self._exit is not None:
            self._exit.set()

    async def main_loop(self) -> None:
        self._exit = asyncio.Event()
        ticks = 0
        while not await self.on_tick(ticks):
            ticks += 10  # one call a second: on_tick refreshes the Date header every 10th
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in getattr(self, "servers", []):
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close, busy ones finish
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 1)
        state = self.server_state
        while (state.connections or state.tasks) and loop.time() < deadline:
            await _WALL_CLOCK.sleep(_POLL)
        for task in list(state.tasks):
            task.cancel()
        for transport in list(self._connections.values()):
            transport.abort()
        for server in getattr(self, "servers", []):
            await server.wait_closed()


class _WithConnections:
    """Puts the connection table in every request's scope, for :class:`Drop`."""

    def __init__(self, app: ASGIApp, connections: Connections) -> None:
        self._app = app
        self._connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("extensions", {})[_CONNECTIONS_KEY] = self._connections
        await self._app(scope, receive, send)


class Drop(Response):
    """Not a response: closes the client's connection without answering."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connections: Connections = scope.get("extensions", {}).get(_CONNECTIONS_KEY, {})
        client = scope.get("client")
        transport = connections.get((client[0], client[1])) if client else None
        if transport is None:
            raise RuntimeError("cannot drop a connection the server does not track")
        transport.close()
        # Wait until uvicorn sees the disconnect, so it does not try to answer 500.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while (await receive())["type"] != "http.disconnect":
                    pass


class LoopbackServer:
    """One ASGI app served on ``host`` (127.0.0.1) at a free port."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._connections: Connections = {}
        self._app = _WithConnections(app, self._connections)
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop serving requests, once started."""

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._socket is None:
            raise RuntimeError("the server is not started")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def in_thread(self) -> bool:
        return self._thread is not None

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self._host, self._port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def start(self) -> None:
        """Bind and serve in the running event loop; returns once requests are accepted."""
        if self._task is not None:
            raise RuntimeError("the server is already started")
        self._socket = self._bind()
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            # access_log=False would empty the process-wide "uvicorn.access" logger (the host's
            # access log, say); the protocol above stays quiet instead.
            access_log=True,
            proxy_headers=False,
            server_header=False,
            ws="none",
            http=_protocol(self._connections),
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(config, self._connections)
        self.loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        async with asyncio.timeout(_STARTUP_TIMEOUT):
            while not self._server.started:
                if self._task.done():
                    await self._task  # re-raises what stopped it
                    raise RuntimeError("the HTTP server stopped while starting")
                await _WALL_CLOCK.sleep(_POLL)

    async def aclose(self) -> None:
        """Stop serving (started with ``start`` in this loop)."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.exit()
        try:
            await task
        finally:
            self._server = self._task = None
            if self._socket is not None:
                self._socket.close()

    def start_in_thread(self, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """Serve from a thread with its own event loop; ``ready`` runs there once started."""
        if self._thread is not None or self._task is not None:
            raise RuntimeError("the server is already started")
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            try:
                await self.start()
                self._stopping = asyncio.Event()
                if ready is not None:
                    await ready()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                await self.aclose()
                return
            started.set()
            await self._stopping.wait()
            await self.aclose()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="outreach-loopback-server", daemon=True
        )
        self._thread.start()
        if not started.wait(_STARTUP_TIMEOUT):
            raise RuntimeError("the HTTP server thread did not start")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def call(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coroutine`` in the server's loop (from any thread)."""
        if self.loop is None:
            coroutine.close()
            raise RuntimeError("the server is not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self, before: Callable[[], Awaitable[None]] | None = None) -> None:
        """Stop a server started with ``start_in_thread`` (``before`` runs in its loop first)."""
        thread, loop, stopping = self._thread, self.loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        if before is not None:
            asyncio.run_coroutine_threadsafe(_call(before), loop).result()
        loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None


async def _call(function: Callable[[], Awaitable[None]]) -> None:
    await function()
