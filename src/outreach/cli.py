"""The ``outreach`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from outreach._client import AsyncClient
from outreach._factory import load_client
from outreach._models import AttemptStatus, Event, EventKind, Notification, Status
from outreach._settings import Settings
from outreach.demo import Story, never_reached_reason, run_story
from outreach.exceptions import OutreachError

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


def _client(app_path: str | None) -> AsyncClient:
    try:
        return load_client(app_path, Settings())
    except OutreachError as error:
        raise typer.BadParameter(str(error)) from error


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
            console.print(
                f"never reached {n.recipient.id} ({n.key or n.id}): {never_reached_reason(n)}"
            )


@app.command()
def worker(app_path: AppOption = None) -> None:
    """Run escalations until interrupted (no webhooks; see `serve`)."""

    async def go() -> None:
        async with _client(app_path) as ox:
            await ox.run()

    with contextlib.suppress(KeyboardInterrupt):
        _run(go())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    insecure_dev: Annotated[
        bool, typer.Option("--insecure-dev", help="Skip webhook signature checks (local only!).")
    ] = False,
    app_path: AppOption = None,
) -> None:
    """Serve the webhooks and run escalations in one process (the embedded default)."""
    import uvicorn

    from outreach.webhooks import create_app

    client = _client(app_path)
    web = create_app(
        client,
        insecure_dev=insecure_dev,
        twilio="sms" in client.channels or "voice" in client.channels or insecure_dev,
        sendgrid="email" in client.channels or insecure_dev,
    )

    async def go() -> None:
        server = uvicorn.Server(uvicorn.Config(web, host=host, port=port, lifespan="off"))
        async with client:
            escalations = asyncio.create_task(client.run())
            try:
                await server.serve()
            finally:
                escalations.cancel()

    with contextlib.suppress(KeyboardInterrupt):
        _run(go())


@app.command()
def demo(
    store: Annotated[
        str | None, typer.Option(help="Store URL; default: a SQLite file in a temporary folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Play the Cape Air story: six passengers of a cancelled flight, on a virtual clock."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="outreach-demo-") as folder:
        url = store or f"sqlite:///{Path(folder) / 'outreach.db'}"
        story = asyncio.run(run_story(url))
    if as_json:
        typer.echo(json.dumps(summary(story), indent=2))
        return
    console.rule("[bold]Cape Air flight 9K 1042 is cancelled")
    for notification in story.notifications:
        print_timeline(console, story, notification)
    print_summary(console, story)


def _elapsed(story: Story, when: datetime) -> str:
    minutes = int((when - story.started) / timedelta(minutes=1))
    days, rest = divmod(minutes, 24 * 60)
    return (
        f"+{days}d {rest // 60:02d}:{rest % 60:02d}"
        if days
        else f"+{rest // 60:02d}:{rest % 60:02d}"
    )


def _describe(event: Event) -> str | None:
    data = event.data
    match event.kind:
        case EventKind.ATTEMPT if data.get("status") == AttemptStatus.SENDING:
            return None
        case EventKind.ATTEMPT if data.get("status") == AttemptStatus.SKIPPED:
            return f"[dim]{data['channel']} skipped: {data.get('error')}[/dim]"
        case EventKind.ATTEMPT:
            return f"{data['channel']} {data['status']}"
        case EventKind.DEFERRED:
            return f"[yellow]waits for the end of quiet hours ({data['until'][11:16]} UTC)[/yellow]"
        case EventKind.ACKNOWLEDGED:
            choice = f", choice {data['choice']}" if data.get("choice") else ""
            return f"[green]acknowledged via {data['via']}{choice}[/green]"
        case EventKind.FOLLOW_UP_STARTED:
            return f"follow-up '{data['name']}' scheduled"
        case EventKind.EXHAUSTED | EventKind.EXPIRED | EventKind.FAILED:
            return f"[red]{event.kind.value}[/red]"
        case _:
            return None


def print_timeline(console: Console, story: Story, notification: Notification) -> None:
    zone = ZoneInfo(notification.recipient.timezone or "UTC")
    name = notification.recipient.attributes.get("name", notification.recipient.id)
    title = f"[bold]{name}[/bold]"
    if notification.parent_id:
        title += f" [dim]follow-up {notification.plan.name}[/dim]"
    else:
        persona = story.personas.get(notification.recipient.id)
        title += f" [dim]{persona.description if persona else ''}[/dim]"
    console.print(title)
    for event in story.events:
        if event.notification_id != notification.id:
            continue
        text = _describe(event)
        if text:
            local = event.at.astimezone(zone).strftime("%H:%M")
            console.print(f"  {_elapsed(story, event.at):>9}  {local} local  {text}")


def summary(story: Story) -> dict[str, Any]:
    """What happened to whom, machine-readably."""
    labels = {option.key: option.label for option in story.plan.options}
    rows = []
    for n in story.notifications:
        if n.parent_id is not None:
            continue
        answered = n.status is Status.ACKNOWLEDGED
        rows.append(
            {
                "recipient": n.recipient.id,
                "name": n.recipient.attributes.get("name", n.recipient.id),
                "status": n.status.value,
                "via": n.acknowledged_via,
                "after_minutes": round((n.acknowledged_at - n.created_at) / timedelta(minutes=1))
                if n.acknowledged_at
                else None,
                "choice": n.choice,
                "choice_label": labels.get(n.choice or ""),
                "follow_ups": [
                    {"key": c.key, "status": c.status.value}
                    for c in story.notifications
                    if c.parent_id == n.id
                ],
                "never_reached": None if answered else never_reached_reason(n),
            }
        )
    return {
        "campaign": story.notifications[0].campaign if story.notifications else None,
        "passengers": rows,
        "acknowledged": sum(row["status"] == "acknowledged" for row in rows),
        "never_reached": [row["recipient"] for row in rows if row["never_reached"]],
    }


def print_summary(console: Console, story: Story) -> None:
    data = summary(story)
    table = Table(title="Who answered")
    for column in ("passenger", "status", "via", "after", "choice", "follow-up"):
        table.add_column(column)
    for row in data["passengers"]:
        after = "" if row["after_minutes"] is None else f"{row['after_minutes']} min"
        follow = ", ".join(
            f"{f['key'].rsplit('/', 1)[-1]} ({f['status']})" for f in row["follow_ups"]
        )
        status = row["status"] if row["never_reached"] is None else f"[red]{row['status']}[/red]"
        table.add_row(
            row["name"], status, row["via"] or "", after, row["choice_label"] or "", follow
        )
    console.print(table)
    console.print(f"{data['acknowledged']} of {len(data['passengers'])} passengers answered.")
    for row in data["passengers"]:
        if row["never_reached"]:
            console.print(f"[red]Never reached[/red] {row['name']}: {row['never_reached']}")
