"""How the demo shows its story: a live board while it runs, then timelines and a summary."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.live import Live
from rich.table import Table

from outreach._client import AsyncClient
from outreach._clock import SystemClock
from outreach._models import AttemptStatus, Event, EventKind, Notification, Status
from outreach.demo import CAMPAIGN, DEMO_START, PASSENGERS, Story
from outreach.outcomes import attempt_reason, describe, never_reached


def _elapsed(when: datetime) -> str:
    minutes = int((when - DEMO_START) / timedelta(minutes=1))
    days, rest = divmod(minutes, 24 * 60)
    clock = f"{rest // 60:02d}:{rest % 60:02d}"
    return f"+{days}d {clock}" if days else f"+{clock}"


def _describe(event: Event, notification: Notification) -> str | None:
    data = event.data
    attempt = notification.attempt(event.attempt_id or "")
    channel = attempt.channel if attempt else data.get("channel", "")
    match event.kind:
        case EventKind.ATTEMPT if data.get("status") == AttemptStatus.SENDING:
            return None
        case EventKind.ATTEMPT if data.get("status") == AttemptStatus.SKIPPED:
            return f"[dim]{channel} skipped: {data.get('error')}[/dim]"
        case EventKind.ATTEMPT if data.get("status") == AttemptStatus.FAILED and attempt:
            return f"[red]{attempt_reason(attempt)}[/red]"
        case EventKind.ATTEMPT:
            return f"{channel} {data['status']}"
        case EventKind.ATTEMPT_STATUS:
            error = data.get("error") or ""
            note = f" ({error[:50]}...)" if len(error) > 50 else f" ({error})" if error else ""
            return f"[dim]{channel} {data['status']}{note}[/dim]"
        case EventKind.DEFERRED:
            return f"[yellow]held back: {data['reason']} until {data['until'][11:16]} UTC[/yellow]"
        case EventKind.ACKNOWLEDGED:
            choice = f", choice {data['choice']}" if data.get("choice") else ""
            return f"[green]acknowledged via {data['via']}{choice}[/green]"
        case EventKind.REPLY:
            return f"replied {data['text']!r}"
        case EventKind.OPTED_OUT:
            return f"[yellow]opted out of {data['medium']}[/yellow]"
        case EventKind.FOLLOW_UP_STARTED:
            return f"follow-up '{data['name']}' scheduled"
        case EventKind.DELIVERED | EventKind.ENGAGED:
            return f"[green]{event.kind.value}: {data['reached_by']}, nothing more sent[/green]"
        case EventKind.EXHAUSTED | EventKind.EXPIRED | EventKind.FAILED:
            return f"[red]{event.kind.value}[/red]"
        case EventKind.ATTENTION_OPENED:
            return f"[yellow]needs a person: {data['detail']}[/yellow]"
        case EventKind.ATTENTION_TAKEN:
            return f"[green]taken by {data['by']}[/green]"
        case _:
            return None


def print_timeline(console: Console, story: Story, notification: Notification) -> None:
    """One passenger's escalation, event by event, in their own time zone."""
    zone = ZoneInfo(notification.recipient.timezone or "UTC")
    name = notification.recipient.attributes.get("name", notification.recipient.id)
    plan = notification.plan
    if notification in story.pages:
        customer = notification.context["customer"]
        paged_for = customer["attributes"].get("name", customer["id"])
        title = f"[bold]{name}[/bold] [dim]paged: {paged_for} needs a person[/dim]"
    elif notification.parent_id:
        title = f"[bold]{name}[/bold] [dim]follow-up {plan.name}[/dim]"
    elif plan.until != "acknowledged":
        title = f"[bold]{name}[/bold] [dim]{plan.name}: no answer needed, until {plan.until}[/dim]"
    else:
        passenger = story.passengers.get(notification.recipient.id)
        title = f"[bold]{name}[/bold] [dim]{passenger.description if passenger else ''}[/dim]"
    console.print(title)
    for event in story.events:
        if event.notification_id == notification.id:
            text = _describe(event, notification)
            if text:
                local = event.at.astimezone(zone).strftime("%H:%M")
                console.print(f"  {_elapsed(event.at):>9}  {local} local  {text}")


def summary(story: Story) -> dict[str, Any]:
    """What happened to whom, machine-readably."""
    labels = {option.key: option.label for option in story.plan.options}
    rows = []
    for n in story.notifications:
        if n.parent_id is not None:
            continue
        answered = n.status is Status.ACKNOWLEDGED
        follow_ups = [c for c in story.notifications if c.parent_id == n.id]
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
                    {
                        "key": c.key,
                        "status": c.status.value,
                        "attempts": [f"{a.channel} {a.status.value}" for a in c.attempts],
                        "outcome": describe(c),
                    }
                    for c in follow_ups
                ],
                "never_reached": None if answered else never_reached(n),
            }
        )
    names = {row["recipient"]: row["name"] for row in rows}
    notices = [
        {
            "recipient": n.recipient.id,
            "name": names.get(n.recipient.id, n.recipient.id),
            "plan": n.plan.name,
            "until": n.plan.until,
            "status": n.status.value,
            "attempts": [f"{a.channel} {a.status.value}" for a in n.attempts],
            "outcome": describe(n),
        }
        for n in story.notices
    ]
    return {
        "campaign": CAMPAIGN,
        "passengers": rows,
        "acknowledged": sum(row["status"] == "acknowledged" for row in rows),
        "never_reached": [row["recipient"] for row in rows if row["never_reached"]],
        "needs_a_person": [
            {
                "attention": a.id,
                "recipient": a.recipient_id,
                "name": names.get(a.recipient_id, a.recipient_id),
                "reason": a.reason.value,
                "detail": a.detail,
                "paged": sorted(
                    p.recipient.id for p in story.pages if p.campaign == f"attention/{a.id}"
                ),
                "taken_by": a.taken_by,
            }
            for a in story.attention
        ],
        "notices": notices,
    }


def print_summary(console: Console, story: Story) -> None:
    """Who answered, how, after how long, and who needs a human."""
    data = summary(story)
    table = Table(title="Who answered")
    for column in ("passenger", "status", "via", "after", "choice", "follow-up"):
        table.add_column(column)
    for row in data["passengers"]:
        after = "" if row["after_minutes"] is None else f"{row['after_minutes']} min"
        follow = ", ".join(
            f"{f['key'].rsplit('/', 1)[-1]}: {f['outcome']}" for f in row["follow_ups"]
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
    for notice in data["notices"]:
        sent = ", ".join(notice["attempts"])
        console.print(
            f"[green]{notice['plan'].capitalize()}[/green] to {notice['name']}: "
            f"{notice['outcome']} ({sent}; nothing more sent)"
        )
    people = data["needs_a_person"]
    console.print(f"[bold]{len(people)} need a person[/bold] (outreach attention):")
    for case in people:
        taken = f" [green]taken by {case['taken_by']}[/green]" if case["taken_by"] else ""
        console.print(
            f"  [yellow]{case['name']}[/yellow] ({case['reason']}): {case['detail']}{taken}"
        )


class LiveBoard:
    """A live table of every passenger's state while the story runs.

    With ``speed`` (virtual minutes per real second) it also paces the story for watching.
    """

    def __init__(self, console: Console, *, speed: float | None = None) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=True)
        self._speed = speed
        self._shown = DEMO_START
        self._clock = SystemClock()

    def __enter__(self) -> Self:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)

    async def update(self, now: datetime, ox: AsyncClient) -> None:
        """Redraw for the virtual time ``now``; wait a little when watching slowly."""
        notifications = await ox.list(campaign=CAMPAIGN)
        order = {p.recipient.id: i for i, p in enumerate(PASSENGERS)}
        table = Table(title=f"Cape Air 9K 1042 — {_elapsed(now)} (virtual time)")
        for column in ("passenger", "status", "last attempt", "choice"):
            table.add_column(column)
        for n in sorted(
            notifications, key=lambda n: (n.parent_id is not None, order[n.recipient.id])
        ):
            last = n.attempts[-1] if n.attempts else None
            name = n.recipient.attributes.get("name", n.recipient.id)
            table.add_row(
                name + (" (follow-up)" if n.parent_id else ""),
                n.status.value,
                f"{last.channel} {last.status.value}" if last else "",
                n.choice or "",
            )
        self._live.update(table, refresh=True)
        if self._speed:
            minutes = (now - self._shown) / timedelta(minutes=1)
            await self._clock.sleep(timedelta(seconds=min(minutes / self._speed, 2.0)))
        self._shown = now
