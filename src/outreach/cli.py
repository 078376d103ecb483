"""The ``outreach`` command line."""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from outreach._models import AttemptStatus, Event, EventKind, Notification, Status
from outreach.demo import Story, never_reached_reason, run_story

app = typer.Typer(
    help="Reach customers by SMS, email and voice until they acknowledge.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """outreach: escalating customer notifications."""


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
