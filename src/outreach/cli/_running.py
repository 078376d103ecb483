"""Long-running commands: worker, serve, and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from outreach.cli._app import app
from outreach.cli._common import (
    AppOption,
    InsecureDevKey,
    client_from_app,
    log_to_stderr,
    require_secret_key,
    run_command,
    until_signalled,
)
from outreach.demo import run_story
from outreach.demo._report import LiveBoard, print_summary, print_timeline, summary


@app.command(epilog="Example: outreach worker --app myapp.outreach:make_client")
def worker(app_path: AppOption = None, insecure_dev_key: InsecureDevKey = False) -> None:
    """Run escalations until SIGTERM or Ctrl-C (no webhooks; see `serve`).

    On either it stops claiming, lets requests already handed to a provider finish, gives
    everything else back to the store for another process, and exits 0.
    """
    log_to_stderr()
    client = client_from_app(app_path)
    require_secret_key(client, "worker", insecure_dev_key=insecure_dev_key)

    async def go() -> None:
        async with client as ox:
            await until_signalled(ox.run())

    run_command(go())


@app.command(epilog="Example: outreach serve --host 0.0.0.0 --port 8000")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    insecure_dev: Annotated[
        bool, typer.Option("--insecure-dev", help="Skip webhook signature checks (local only!).")
    ] = False,
    app_path: AppOption = None,
    insecure_dev_key: InsecureDevKey = False,
) -> None:
    """Serve the webhooks and run escalations in one process (the embedded default)."""
    import uvicorn

    from outreach.webhooks import create_app

    client = client_from_app(app_path)
    require_secret_key(client, "serve", insecure_dev_key=insecure_dev_key or insecure_dev)
    web = create_app(
        client,
        insecure_dev=insecure_dev,
        insecure_dev_key=insecure_dev_key,
        twilio="sms" in client.channels or "voice" in client.channels or insecure_dev,
        sendgrid="email" in client.channels or insecure_dev,
    )

    log_to_stderr()

    async def go() -> None:
        server = uvicorn.Server(uvicorn.Config(web, host=host, port=port, lifespan="off"))
        async with client:  # closing it stops the escalations gracefully, as worker does
            escalations = asyncio.create_task(client.run())
            try:
                await server.serve()  # uvicorn handles SIGTERM and Ctrl-C itself
            finally:
                escalations.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await escalations

    run_command(go())


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
    for notification in story.notifications:
        print_timeline(console, story, notification)
    print_summary(console, story)
