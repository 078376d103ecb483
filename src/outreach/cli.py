"""The ``outreach`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from outreach._client import AsyncClient
from outreach._csv import read_recipients
from outreach._factory import load_client
from outreach._messages import template_context
from outreach._models import Medium, Notification, Option, Plan, Recipient, Status
from outreach._outcome import never_reached
from outreach._settings import Settings
from outreach._templates import Templates
from outreach.demo import run_story
from outreach.demo._report import LiveBoard, print_summary, print_timeline, summary
from outreach.exceptions import ConfigurationError, OutreachError, TemplateError

T = TypeVar("T")

app = typer.Typer(
    help="Reach customers by SMS, email and voice until they acknowledge.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """outreach: escalating customer notifications."""


AppOption = Annotated[
    str | None,
    typer.Option("--app", help="module:factory returning an AsyncClient (default: from settings)."),
]


def _fail(message: str) -> NoReturn:
    """A configuration problem: one line on stderr, exit status 2, no traceback."""
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def _settings() -> Settings:
    try:
        return Settings()
    except ConfigurationError as error:
        _fail(str(error))


def _client(app_path: str | None) -> AsyncClient:
    settings = _settings()
    try:
        return load_client(app_path, settings)
    except OutreachError as error:
        _fail(str(error))


InsecureDevKey = Annotated[
    bool,
    typer.Option(
        "--insecure-dev-key",
        help="Run without OUTREACH_SECRET_KEY: links signed with a throw-away key (local only!).",
    ),
]


def _require_secret_key(client: AsyncClient, command: str, *, insecure_dev_key: bool) -> None:
    """Long-running commands sign links that every process must verify: no throw-away key."""
    if client.settings.secret_key is not None:
        return
    if not insecure_dev_key:
        _fail(
            f"outreach {command} needs OUTREACH_SECRET_KEY (a long random value, the same in "
            "every process) to sign acknowledgement and unsubscribe links that stay valid; "
            "--insecure-dev-key runs without one, for local experiments only"
        )
    Console(stderr=True).print(
        "[yellow]warning:[/yellow] --insecure-dev-key: links are signed with a throw-away key "
        "and stop working when this process exits"
    )


def _log_to_stderr() -> None:
    """Long-running commands say what they do (INFO and up) on standard error."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


async def _until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until SIGTERM or SIGINT cancels it (its graceful stop), then return."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except OutreachError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error


def _ids(notification_id: str | None, key: str | None) -> tuple[str | None, str | None]:
    if (notification_id is None) == (key is None):
        raise typer.BadParameter("give a notification id or --key, not both")
    return notification_id, key


@app.command()
def send(
    plan_file: Annotated[Path, typer.Argument(help="The plan, as .toml or .json.")],
    recipients: Annotated[Path, typer.Argument(help="CSV: id, phone, email, timezone, ...")],
    campaign: Annotated[str, typer.Option(help="Campaign name; also prefixes each key.")],
    context: Annotated[
        list[str] | None, typer.Option(help="Template variable as name=value (repeatable).")
    ] = None,
    app_path: AppOption = None,
) -> None:
    """Start a plan for everyone in a CSV file; bad rows are reported and skipped."""
    values = _pairs(context, "--context")
    requests, errors = read_recipients(recipients, key_prefix=campaign)
    err = Console(stderr=True)
    for error in errors:
        err.print(f"[yellow]skipped[/yellow] {recipients.name} {error}")

    async def go() -> int:
        plan = Plan.load(plan_file)
        async with _client(app_path) as ox:
            started = await ox.start_many(plan, requests, context=values, campaign=campaign)
            return len(started)

    count = _run(go()) if requests else 0
    typer.echo(
        f"started {count} notification(s) in campaign {campaign}; skipped {len(errors)} row(s)"
    )
    if errors:
        raise typer.Exit(2)


@app.command()
def templates(
    folder: Annotated[
        Path | None, typer.Argument(help="Templates folder (default: OUTREACH_TEMPLATES).")
    ] = None,
    context: Annotated[
        list[str] | None, typer.Option(help="Sample variable as name=value (repeatable).")
    ] = None,
) -> None:
    """Check every notice: which media it has, and whether each renders with sample data."""
    configured = _settings().templates
    root = folder or (Path(configured) if configured else None)
    if root is None:
        raise typer.BadParameter("give a folder or set OUTREACH_TEMPLATES")
    try:
        notices = Templates(root)
    except OutreachError as error:
        raise typer.BadParameter(str(error)) from error
    options = (Option(key="1", label="First choice"), Option(key="2", label="Second choice"))
    sample = template_context(
        _pairs(context, "--context"),
        Recipient(id="sample", phone="+16175550123", email="sample@example.com"),
        options,
        ack_url="https://example.com/ack/sample",
        option_urls={o.key: f"https://example.com/ack/sample-{o.key}" for o in options},
    )
    table = Table("notice", *(m.value for m in Medium))
    broken = 0
    for name in notices.names():
        cells = []
        for medium in Medium:
            try:
                rendered = notices.render(name, medium, sample)
            except TemplateError as error:
                missing = "has no" in str(error)
                broken += not missing
                cells.append("[dim]-[/dim]" if missing else f"[red]{error}[/red]")
                continue
            extra = f" ({rendered.segments} SMS segment(s))" if rendered.segments else ""
            cells.append(f"[green]ok[/green]{extra}")
        table.add_row(name, *cells)
    Console().print(table)
    if broken:
        raise typer.Exit(1)


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    values = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{option} {item!r}: write it as name=value")
        values[name] = value
    return values


@app.command()
def ack(
    notification_id: Annotated[str | None, typer.Argument(help="Notification id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key instead of the id.")] = None,
    choice: Annotated[str | None, typer.Option(help="The option the customer chose.")] = None,
    via: Annotated[str, typer.Option(help="How the answer came in.")] = "support",
    app_path: AppOption = None,
) -> None:
    """Record a customer's acknowledgement (for support staff)."""
    ids = _ids(notification_id, key)

    async def go() -> Notification:
        async with _client(app_path) as ox:
            return await ox.acknowledge(ids[0], key=ids[1], via=via, choice=choice)

    n = _run(go())
    typer.echo(f"{n.id} {n.status.value}" + (f" choice {n.choice}" if n.choice else ""))


@app.command()
def cancel(
    notification_id: Annotated[str | None, typer.Argument(help="Notification id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key instead of the id.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the event log.")] = None,
    app_path: AppOption = None,
) -> None:
    """Withdraw a notification: nothing more is sent for it."""
    ids = _ids(notification_id, key)

    async def go() -> Notification:
        async with _client(app_path) as ox:
            return await ox.cancel(ids[0], key=ids[1], reason=reason)

    typer.echo(f"{(n := _run(go())).id} {n.status.value}")


@app.command()
def status(
    notification_id: Annotated[str | None, typer.Argument(help="Notification id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key instead of the id.")] = None,
    app_path: AppOption = None,
) -> None:
    """Show one notification and its attempts."""
    ids = _ids(notification_id, key)

    async def go() -> Notification:
        async with _client(app_path) as ox:
            return await ox.get(ids[0], key=ids[1])

    n = _run(go())
    console = Console()
    console.print(
        f"[bold]{n.id}[/bold] key={n.key} campaign={n.campaign} status={n.status.value}"
        + (f" choice={n.choice} via={n.acknowledged_via}" if n.choice else "")
    )
    table = Table("attempt", "channel", "status", "sent", "error")
    for a in n.attempts:
        sent = a.sent_at.isoformat(timespec="seconds") if a.sent_at else ""
        table.add_row(
            f"{a.pass_}.{a.step}.{a.reattempt}", a.channel, a.status.value, sent, a.error or ""
        )
    console.print(table)


@app.command()
def report(
    campaign: Annotated[str, typer.Argument(help="Campaign name given to start().")],
    app_path: AppOption = None,
) -> None:
    """Count a campaign's notifications by status and list who was never reached."""

    async def go() -> list[Notification]:
        async with _client(app_path) as ox:
            return await ox.list(campaign=campaign, limit=1_000_000)

    notifications = [n for n in _run(go()) if n.parent_id is None]
    counts: dict[str, int] = {}
    for n in notifications:
        counts[n.status.value] = counts.get(n.status.value, 0) + 1
    console = Console()
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no notifications")
    for n in notifications:
        if n.status in (Status.EXHAUSTED, Status.EXPIRED, Status.FAILED):
            console.print(f"never reached {n.recipient.id} ({n.key or n.id}): {never_reached(n)}")


@app.command()
def worker(app_path: AppOption = None, insecure_dev_key: InsecureDevKey = False) -> None:
    """Run escalations until SIGTERM or Ctrl-C (no webhooks; see `serve`).

    On either it stops claiming, lets requests already handed to a provider finish, gives
    everything else back to the store for another process, and exits 0.
    """
    _log_to_stderr()
    client = _client(app_path)
    _require_secret_key(client, "worker", insecure_dev_key=insecure_dev_key)

    async def go() -> None:
        async with client as ox:
            await _until_signalled(ox.run())

    _run(go())


@app.command()
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

    client = _client(app_path)
    _require_secret_key(client, "serve", insecure_dev_key=insecure_dev_key or insecure_dev)
    web = create_app(
        client,
        insecure_dev=insecure_dev,
        insecure_dev_key=insecure_dev_key,
        twilio="sms" in client.channels or "voice" in client.channels or insecure_dev,
        sendgrid="email" in client.channels or insecure_dev,
    )

    _log_to_stderr()

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

    _run(go())


@app.command()
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
            story = _run(run_story(url))
            typer.echo(json.dumps(summary(story), indent=2))
            return
        with LiveBoard(console, speed=speed) as board:
            story = _run(run_story(url, on_step=board.update))
    console.rule("[bold]Cape Air flight 9K 1042 is cancelled")
    for notification in story.notifications:
        print_timeline(console, story, notification)
    print_summary(console, story)
