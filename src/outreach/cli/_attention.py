"""The support team's work queue: ``outreach attention`` lists who needs a person,
``outreach attention take`` takes a case (its pages stop), ``outreach resolve`` closes it."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from outreach._models import Attention
from outreach.cli._app import app
from outreach.cli._common import (
    AppOption,
    JsonOption,
    StoreOption,
    bad_input,
    build_client,
    existing,
    run_command,
)

attention_group = typer.Typer(
    epilog="Example: outreach attention --campaign 9K1042 --json\n\n"
    "Example: outreach attention take 3afe41801e59e6b4 --by agent-7"
)
app.add_typer(attention_group, name="attention")


@attention_group.callback(invoke_without_command=True)
def attention(
    context: typer.Context,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign's cases.")] = None,
    include_resolved: Annotated[
        bool, typer.Option("--all", help="Resolved cases too, not only open ones.")
    ] = False,
    store: StoreOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """Who needs a person, and why (oldest first): the customers never reached, replies not
    understood, and choices that hand over to a person; who has taken each.
    ``attention take`` takes one."""
    if context.invoked_subcommand is not None:
        return
    client = build_client(app_path, store)

    async def go() -> list[Attention]:
        async with existing(client) as ox:
            return await ox.attention(campaign=campaign, open=None if include_resolved else True)

    found = run_command(go())
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in found], indent=2))
        return
    console = Console()
    if not found:
        console.print(
            "Nobody needs a person" + (f" in campaign {escape(campaign)}." if campaign else ".")
        )
        return
    for a in found:  # one case a line: easy to read, grep and copy an id from
        resolved = (
            ""
            if a.open
            else f"  [resolved by {a.resolved_by}" + (f": {a.note}]" if a.note else "]")
        )
        if a.taken_by is not None:
            resolved = f"  [taken by {a.taken_by}]{resolved}"
        elif a.unanswered_at is not None and a.open:
            resolved = "  [paged, nobody took it]"
        console.print(
            f"[bold]{a.id}[/bold]  {a.opened_at.isoformat(timespec='minutes')}  "
            f"{escape(a.recipient_id)}  {escape(a.campaign or '-')}  "
            f"[yellow]{a.reason.value}[/yellow]: {escape(a.detail)}{escape(resolved)}",
            soft_wrap=True,
            highlight=False,
        )


@attention_group.command(epilog="Example: outreach attention take 3afe41801e59e6b4 --by agent-7")
def take(
    attention_id: Annotated[str, typer.Argument(help="The attention record's id.")],
    by: Annotated[str, typer.Option("--by", help="Who takes it (an agent's name or id).")],
    store: StoreOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """Take an attention record: you own it, and every page for it stops.

    When someone else took it first, it says who has it and exits 1.
    """
    if not by.strip():
        raise bad_input("--by must name who takes it")
    client = build_client(app_path, store)

    async def go() -> Attention:
        async with existing(client) as ox:
            return await ox.take(attention_id, by=by)

    taken = run_command(go())
    if as_json:
        typer.echo(taken.model_dump_json(indent=2))
        return
    assert taken.taken_at is not None
    typer.echo(
        f"attention {taken.id} taken by {taken.taken_by} at "
        f"{taken.taken_at.isoformat(timespec='seconds')}"
    )


@app.command(
    epilog='Example: outreach resolve 3afe41801e59e6b4 --by agent-7 --note "refund re-sent"'
)
def resolve(
    attention_id: Annotated[str, typer.Argument(help="The attention record's id.")],
    by: Annotated[str, typer.Option("--by", help="Who resolved it (an agent's name or id).")],
    note: Annotated[str | None, typer.Option(help="What was done.")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """Close an attention record (again: nothing changes)."""
    if not by.strip():
        raise bad_input("--by must name who resolved it")
    client = build_client(app_path, store)

    async def go() -> Attention:
        async with existing(client) as ox:
            return await ox.resolve(attention_id, by=by, note=note)

    closed = run_command(go())
    if as_json:
        typer.echo(closed.model_dump_json(indent=2))
        return
    assert closed.resolved_at is not None
    typer.echo(
        f"attention {closed.id} resolved by {closed.resolved_by} at "
        f"{closed.resolved_at.isoformat(timespec='seconds')}"
    )
