"""Long-running commands: worker, serve, and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from outreach._client import AsyncClient
from outreach._telemetry import install_prometheus
from outreach.cli._app import app
from outreach.cli._common import (
    AppOption,
    InsecureDevKey,
    StoreOption,
    build_client,
    fail,
    require_secret_key,
    run_command,
    until_signalled,
)
from outreach.cli._logging import (
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    log_to_stderr,
)
from outreach.demo import run_story
from outreach.demo._report import LiveBoard, print_summary, print_timeline, summary
from outreach.exceptions import ConfigurationError

log = logging.getLogger("outreach.cli")

Concurrency = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        min=1,
        help=(
            "Notifications this process drives at once, claimed and in progress "
            "(default: twice the channels' max_in_flight together, at most 500)."
        ),
    ),
]


def _client(app_path: str | None, store: str | None, concurrency: int | None) -> AsyncClient:
    client = build_client(app_path, store)
    if concurrency is not None:
        client.concurrency = concurrency
    return client


@app.command(
    epilog="Example: outreach worker --store postgresql://postgres@127.0.0.1/test --concurrency 200"
)
def worker(
    store: StoreOption = None,
    concurrency: Concurrency = None,
    app_path: AppOption = None,
    insecure_dev_key: InsecureDevKey = False,
    log_level: LogLevelOption = LogLevel.INFO,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Run escalations until SIGTERM or Ctrl-C (no webhooks; see `serve --no-worker`).

    Any number of workers may share one PostgreSQL store (or one SQLite file). Each drives up
    to --concurrency notifications at once. On SIGTERM or Ctrl-C it stops claiming, lets
    requests already handed to a provider finish, gives everything else back to the store for
    another process, and exits 0.
    """
    log_to_stderr(log_level, log_format)
    client = _client(app_path, store, concurrency)
    log_to_stderr(log_level, log_format)  # again: an --app factory that configured logging keeps it
    require_secret_key(client, "worker", insecure_dev_key=insecure_dev_key)

    async def work() -> None:
        async with client as ox:
            log.info("worker running on %r, %d notification(s) at once", ox.store, ox.concurrency)
            await ox.run()

    run_command(until_signalled(work()))  # a signal while the store opens stops it cleanly too


@app.command(epilog="Example: outreach serve --host 0.0.0.0 --port 8000")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker", help="Serve the webhooks only; `outreach worker` runs escalations."
        ),
    ] = False,
    store: StoreOption = None,
    insecure_dev: Annotated[
        bool, typer.Option("--insecure-dev", help="Skip webhook signature checks (local only!).")
    ] = False,
    app_path: AppOption = None,
    insecure_dev_key: InsecureDevKey = False,
    log_level: LogLevelOption = LogLevel.INFO,
    log_format: LogFormatOption = LogFormat.TEXT,
    metrics: Annotated[
        bool,
        typer.Option("--metrics", help="Serve Prometheus metrics at /metrics (outreach[otel])."),
    ] = False,
) -> None:
    """Serve the webhooks and run escalations in one process (the embedded default), or,
    with --no-worker, the webhooks alone (behind a load balancer, say, with workers apart)."""
    import uvicorn

    from outreach.webhooks import create_app

    # First: building the app may warn. As JSON, uvicorn's own lines go through the same
    # handler (its config would format them).
    json_logs = log_format is LogFormat.JSON
    loggers = ("outreach", "uvicorn") if json_logs else ("outreach",)
    log_to_stderr(log_level, log_format, loggers=loggers)
    scrape = None
    if metrics:
        try:
            scrape = install_prometheus()  # before the client makes its instruments
        except ConfigurationError as error:
            fail(str(error))
    client = _client(app_path, store, None)
    log_to_stderr(log_level, log_format, loggers=loggers)  # again: as --app configured, if it did
    require_secret_key(client, "serve", insecure_dev_key=insecure_dev_key or insecure_dev)
    web = create_app(
        client,
        insecure_dev=insecure_dev,
        insecure_dev_key=insecure_dev_key,
        twilio="sms" in client.channels or "voice" in client.channels or insecure_dev,
        sendgrid="email" in client.channels or insecure_dev,
    )

    if scrape is not None:
        web.router.routes.append(scrape)
    uvicorn_logging = None if json_logs else uvicorn.config.LOGGING_CONFIG

    class Server(uvicorn.Server):
        """uvicorn's own signal handling raises SIGTERM again after its graceful shutdown
        (exit status -15); here the command's handlers ask for the shutdown, and it exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async def go() -> None:
        server = Server(
            uvicorn.Config(
                web,
                host=host,
                port=port,
                lifespan="off",
                log_level=log_level.value,
                log_config=uvicorn_logging,
            )
        )

        def shut_down() -> None:
            server.should_exit = True

        with signals_call(shut_down):
            async with client:  # closing it stops the escalations gracefully, as worker does
                if no_worker:
                    log.info("webhooks only (--no-worker): `outreach worker` runs the escalations")
                    await server.serve()
                    return
                escalations = asyncio.create_task(client.run())
                try:
                    await server.serve()
                finally:
                    escalations.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await escalations

    run_command(go())


@contextlib.contextmanager
def signals_call(handler: Callable[[], None]) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT call ``handler`` (on the running loop)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handler)
    try:
        yield
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


@app.command(epilog="Example: outreach demo --speed 30")
def demo(
    store: Annotated[
        str | None, typer.Option(help="Store URL; default: a SQLite file in a temporary folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Virtual minutes per real second, to watch it unfold (default: flat out)."
        ),
    ] = None,
) -> None:
    """Play the Cape Air story: six passengers of a cancelled flight, on a virtual clock."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="outreach-demo-") as folder:
        url = store or f"sqlite:///{Path(folder) / 'outreach.db'}"
        if as_json:
            story = run_command(run_story(url))
            typer.echo(json.dumps(summary(story), indent=2))
            return
        with LiveBoard(console, speed=speed) as board:
            story = run_command(run_story(url, on_step=board.update))
    console.rule("[bold]Cape Air flight 9K 1042 is cancelled")
    for notification in [*story.notifications, *story.notices, *story.pages]:
        print_timeline(console, story, notification)
    print_summary(console, story)
